"""The package is laid out by process: a module that imports across those lines fails here.

The contracts live in pyproject.toml (`[tool.importlinter]`): the hub's, the user servers',
each service's and the CLI's packages do not import each other, and the shared modules import
no process and no server. import-linter builds the real import graph of `dsml`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_no_module_imports_across_process_lines() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "broken" not in result.stdout.split("Contracts:")[-1].split("\n")[0].replace(
        "0 broken", ""
    )
