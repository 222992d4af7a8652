"""`dsml check`: what notebooks and requirements ask for, against the curated environments.

Every test runs the real command on notebooks written into a temporary folder and the
environments built by the `env_datadir` fixture; garbage input must give one line and exit 2.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from dsml.datadir import DataDir
from dsml.environments import checker, find_environment
from dsml.environments.build import prefix_for
from dsml.environments.inventory import catalog_path, inventory, write_catalog

from conftest import DSML, free_port, write_settings


def notebook(*cells: str, kernel: str | None = None) -> dict[str, Any]:
    """An nbformat 4 notebook; a cell starting with '# md' is a markdown cell."""
    nb: dict[str, Any] = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": []}
    for source in cells:
        if source.startswith("# md"):
            nb["cells"].append({"cell_type": "markdown", "metadata": {}, "source": source})
        else:
            nb["cells"].append(
                {
                    "cell_type": "code",
                    "metadata": {},
                    "execution_count": None,
                    "outputs": [],
                    "source": source.splitlines(keepends=True),
                }
            )
    if kernel:
        nb["metadata"]["kernelspec"] = {
            "name": kernel,
            "display_name": kernel,
            "language": "python",
        }
    return nb


def write_notebook(path: Path, *cells: str, kernel: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(notebook(*cells, kernel=kernel), indent=1))
    return path


@pytest.fixture
def settings(env_datadir: DataDir, tmp_path: Path) -> Path:
    return write_settings(tmp_path / "settings.yaml", env_datadir.root, free_port())


def dsml_check(settings: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        DSML + ["check", "--settings", str(settings), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def check_json(settings: Path, *args: str) -> tuple[int, dict[str, Any]]:
    result = dsml_check(settings, "--json", *args)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout)


REPORT_CELLS = (
    "import pandas as pd\nimport os",
    "# md A chart",
    "import lightgbm",
    "from sklearn.linear_model import LinearRegression",
    "!pip install pandas==1.5.3",
    "try:\n    import fancy_optional_xyz\nexcept ImportError:\n    fancy_optional_xyz = None",
)


def by_name(findings: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f"{f['kind']}:{f['name']}": f for f in findings}


def test_notebook_against_its_kernel_environment(settings: Path, tmp_path: Path) -> None:
    path = write_notebook(tmp_path / "report.ipynb", *REPORT_CELLS, kernel="dsml-datascience")
    code, out = check_json(settings, str(path))
    assert code == 1 and out["ok"] is False
    assert out["files"][0]["environment"] == "datascience"
    assert out["files"][0]["environment_from"] == "kernelspec"
    found = by_name(out["findings"])
    pandas_pin = find_environment("datascience").packages["pandas"]

    assert found["import:pandas"]["status"] == "ok"
    assert found["import:pandas"]["pinned"] == pandas_pin
    assert found["import:os"]["status"] == "stdlib"

    lightgbm = found["import:lightgbm"]
    assert (lightgbm["status"], lightgbm["cell"], lightgbm["line"]) == ("missing", 3, 1)
    assert lightgbm["available_in"] == []

    sklearn = found["import:sklearn"]
    assert (sklearn["status"], sklearn["distribution"], sklearn["cell"]) == (
        "ok",
        "scikit-learn",
        4,
    )

    pip = found["pip-install:pandas"]
    assert pip["status"] == "version-mismatch"
    assert (pip["requested"], pip["pinned"], pip["cell"], pip["line"]) == (
        "==1.5.3",
        pandas_pin,
        5,
        1,
    )

    optional = found["import:fancy_optional_xyz"]
    assert (optional["status"], optional["optional"], optional["line"]) == ("missing", True, 2)
    assert out["summary"]["problems"] == 2
    assert out["summary"]["optional_missing"] == 1


def test_human_output_names_cell_line_and_what_to_do(settings: Path, tmp_path: Path) -> None:
    path = write_notebook(tmp_path / "report.ipynb", *REPORT_CELLS, kernel="dsml-datascience")
    result = dsml_check(settings, str(path))
    version = find_environment("datascience").version
    assert result.returncode == 1, result.stderr
    assert (
        f"{path} cell 3 line 1: import lightgbm — not in datascience ({version}); "
        "no curated environment has it; ask the platform team: "
        "dsml env request lightgbm --env datascience"
    ) in result.stdout
    assert f"{path} cell 5 line 1: pip install pandas==1.5.3 — datascience" in result.stdout
    assert "best fit: datascience" in result.stdout
    assert result.stderr == ""


def test_other_environment_is_suggested_as_best_fit(settings: Path, tmp_path: Path) -> None:
    path = write_notebook(tmp_path / "model.ipynb", *REPORT_CELLS)
    code, out = check_json(settings, "--env", "python-minimal", str(path))
    assert code == 1
    found = by_name(out["findings"])
    sklearn = found["import:sklearn"]
    assert sklearn["status"] == "missing"
    assert sklearn["distribution"] == "scikit-learn"
    assert sklearn["available_in"] == ["datascience"]
    assert found["import:pandas"]["status"] == "missing"
    pip = found["pip-install:pandas"]
    assert (pip["status"], pip["available_in"]) == ("missing", [])
    assert pip["pinned_in"] == {"datascience": find_environment("datascience").packages["pandas"]}
    assert out["best_fit"]["environment"] == "datascience"
    assert [fit["environment"] for fit in out["ranking"]] == ["datascience", "python-minimal"]

    text = dsml_check(settings, "--env", "python-minimal", str(path)).stdout
    assert "import sklearn — not in python-minimal" in text
    assert "it is in datascience (switch the kernel to Python 3.11 (datascience))" in text
    assert "pip install pandas==1.5.3 — not in python-minimal" in text
    pin = find_environment("datascience").packages["pandas"]
    assert f"datascience has pandas {pin}, which does not fit ==1.5.3" in text


def test_default_environment_comes_from_settings(settings: Path, tmp_path: Path) -> None:
    path = write_notebook(tmp_path / "plain.ipynb", "import pandas", kernel="python3")
    code, out = check_json(settings, str(path))
    assert code == 0 and out["ok"] is True
    assert out["files"][0]["environment"] == "datascience"  # spawner.default_environment
    assert out["files"][0]["environment_from"] == "settings"
    minimal = write_notebook(tmp_path / "mini.ipynb", "import pandas", kernel="dsml-python-minimal")
    code, out = check_json(settings, str(minimal))
    assert code == 1 and out["files"][0]["environment"] == "python-minimal"


def test_all_supported_is_exit_0(settings: Path, tmp_path: Path) -> None:
    (tmp_path / "helper.py").write_text("VALUE = 1\n")
    path = write_notebook(
        tmp_path / "fine.ipynb",
        "import json, helper\nfrom numpy import array",
        "try:\n    import not_here_xyz\nexcept ImportError:\n    pass",
        "%pip install 'pandas>=2,<4'",
    )
    result = dsml_check(settings, str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "note: " in result.stdout  # the optional import is mentioned, not counted
    code, out = check_json(settings, str(path))
    statuses = {f["name"]: f["status"] for f in out["findings"]}
    assert statuses == {
        "json": "stdlib",
        "helper": "local",
        "numpy": "ok",
        "not_here_xyz": "missing",
        "pandas": "ok",
    }


def test_folder_of_notebooks_skips_checkpoints(settings: Path, tmp_path: Path) -> None:
    folder = tmp_path / "project"
    write_notebook(folder / "a.ipynb", "import pandas")
    write_notebook(folder / "sub" / "b.ipynb", "import xgboost")
    write_notebook(folder / ".ipynb_checkpoints" / "a-checkpoint.ipynb", "import lightgbm")
    write_notebook(folder / "sub" / ".ipynb_checkpoints" / "b-checkpoint.ipynb", "import torch")
    code, out = check_json(settings, str(folder))
    assert code == 1
    files = sorted(f["file"] for f in out["files"])
    assert files == [str(folder / "a.ipynb"), str(folder / "sub" / "b.ipynb")]
    names = {f["name"]: f["status"] for f in out["findings"]}
    assert names == {"pandas": "ok", "xgboost": "missing"}


def test_requirements_file(settings: Path, tmp_path: Path) -> None:
    (tmp_path / "base.txt").write_text("numpy==1.26.4  # old pin\n")
    req = tmp_path / "requirements.txt"
    req.write_text(
        "# what the project needs\n"
        "-r base.txt\n"
        "--index-url https://packages.example.com/simple\n"
        "pandas>=2,<4\n"
        "scikit-learn[alldeps]>=1.0 \\\n"
        "    --hash=sha256:0000000000000000000000000000000000000000000000000000000000000000\n"
        'pywin32==306 ; sys_platform == "win32"\n'
        "lightgbm>=4\n"
        "-e ./mylib\n"
    )
    code, out = check_json(settings, "--env", "datascience", str(req))
    assert code == 1
    rows = {f["name"]: f for f in out["findings"]}
    assert set(rows) == {"numpy", "pandas", "scikit-learn", "lightgbm", "./mylib"}
    assert rows["numpy"]["status"] == "version-mismatch"
    assert rows["numpy"]["file"] == str(tmp_path / "base.txt")
    assert rows["pandas"]["status"] == "ok"
    assert rows["pandas"]["requested"] == "<4,>=2"
    assert (rows["scikit-learn"]["status"], rows["scikit-learn"]["line"]) == ("ok", 5)
    assert rows["lightgbm"]["status"] == "missing"
    assert rows["./mylib"]["status"] == "unsupported"
    assert all(f["kind"] == "requirement" for f in out["findings"])


def test_json_shape(settings: Path, tmp_path: Path) -> None:
    path = write_notebook(tmp_path / "shape.ipynb", "import pandas\nimport lightgbm")
    code, out = check_json(settings, str(path))
    assert code == 1
    assert set(out) == {
        "ok",
        "files",
        "environments",
        "findings",
        "summary",
        "best_fit",
        "ranking",
    }
    assert {e["name"] for e in out["environments"]} == {"python-minimal", "datascience"}
    assert all(e["built"] for e in out["environments"])
    for finding in out["findings"]:
        assert set(finding) >= {
            "file",
            "cell",
            "line",
            "kind",
            "name",
            "distribution",
            "requested",
            "pinned",
            "status",
            "environment",
            "environment_version",
            "optional",
            "available_in",
            "pinned_in",
        }
        assert finding["status"] in checker.STATUSES
    assert set(out["summary"]) == {
        "checked",
        "supported",
        "problems",
        "optional_missing",
        "by_status",
    }
    assert set(out["best_fit"]) == {"environment", "version", "satisfied", "total", "built"}


def _garbage(tmp_path: Path, kind: str) -> Path:
    if kind == "not-json":
        path = tmp_path / "broken.ipynb"
        path.write_text("this is { not json")
    elif kind == "empty":
        path = tmp_path / "empty.ipynb"
        path.write_text("")
    elif kind == "json-object-not-notebook":
        path = tmp_path / "config.ipynb"
        path.write_text('{"name": "x", "values": [1, 2]}')
    elif kind == "json-list":
        path = tmp_path / "list.ipynb"
        path.write_text("[1, 2, 3]")
    elif kind == "nbformat-3":
        path = tmp_path / "old.ipynb"
        path.write_text(json.dumps({"nbformat": 3, "worksheets": [], "metadata": {}}))
    elif kind == "bad-cell":
        path = tmp_path / "badcell.ipynb"
        path.write_text(json.dumps({"nbformat": 4, "cells": [{"cell_type": "code", "source": 7}]}))
    elif kind == "deep-json":
        path = tmp_path / "deep.ipynb"
        path.write_text("[" * 100_000 + "]" * 100_000)
    elif kind == "huge":
        path = tmp_path / "huge.ipynb"
        with open(path, "wb") as f:
            f.truncate(200 * 1024 * 1024)  # sparse: no 200 MB written
    elif kind == "binary":
        path = tmp_path / "image.ipynb"
        path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + os.urandom(2000))
    elif kind == "latin1":
        path = tmp_path / "latin.ipynb"
        path.write_bytes(b'{"cells": "caf\xe9"}')
    elif kind == "binary-requirements":
        path = tmp_path / "requirements.txt"
        path.write_bytes(os.urandom(4000) + b"\x00")
    elif kind == "prose-requirements":
        path = tmp_path / "requirements.txt"
        path.write_text("pandas\nthis is not a requirement at all\n")
    elif kind == "broken-python":
        path = tmp_path / "script.py"
        path.write_text("def f(:\n    pass\n")
    elif kind == "unknown-suffix":
        path = tmp_path / "data.bin"
        path.write_bytes(b"\x00\x01")
    elif kind == "missing":
        path = tmp_path / "nowhere.ipynb"
    elif kind == "empty-folder":
        path = tmp_path / "nothing-here"
        path.mkdir()
    else:
        raise AssertionError(kind)
    return path


GARBAGE = [
    "not-json",
    "empty",
    "json-object-not-notebook",
    "json-list",
    "nbformat-3",
    "bad-cell",
    "deep-json",
    "huge",
    "binary",
    "latin1",
    "binary-requirements",
    "prose-requirements",
    "broken-python",
    "unknown-suffix",
    "missing",
    "empty-folder",
]


@pytest.mark.parametrize("kind", GARBAGE)
@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_garbage_is_one_line_and_exit_2(
    settings: Path, tmp_path: Path, kind: str, as_json: bool
) -> None:
    path = _garbage(tmp_path, kind)
    result = dsml_check(settings, *(["--json"] if as_json else []), str(path))
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"dsml check: error: {path}")
    assert result.stdout == ""


def test_huge_file_message_says_why(settings: Path, tmp_path: Path) -> None:
    result = dsml_check(settings, str(_garbage(tmp_path, "huge")))
    assert "200.0 MB is over the 50 MB limit" in result.stderr


def test_good_and_garbage_together_is_exit_2(settings: Path, tmp_path: Path) -> None:
    good = write_notebook(tmp_path / "good.ipynb", "import pandas")
    bad = _garbage(tmp_path, "not-json")
    result = dsml_check(settings, str(good), str(bad))
    assert result.returncode == 2
    assert result.stdout == ""


def test_unknown_environment_is_exit_2(settings: Path, tmp_path: Path) -> None:
    path = write_notebook(tmp_path / "a.ipynb", "import pandas")
    result = dsml_check(settings, "--env", "no-such-env", str(path))
    assert result.returncode == 2
    assert "unknown environment 'no-such-env'" in result.stderr


def requests_of(tmp_path: Path, *cells: str) -> list[tuple[Any, ...]]:
    path = write_notebook(tmp_path / "cells.ipynb", *cells)
    source = checker.Source(path, str(path), "notebook")
    found, _ = checker.read_requests(source)
    return [(r.cell, r.line, r.kind, r.name, r.spec, r.tool, bool(r.unsupported)) for r in found]


def test_magics_and_shell_lines(tmp_path: Path) -> None:
    found = requests_of(
        tmp_path,
        "import os\n%matplotlib inline\n%pip install -q 'requests>=2' six\n"
        "!{sys.executable} -m pip install --upgrade numpy==2.0\n%conda install -y scipy=1.11\n"
        "os?\n%time import yaml\nfiles = !ls\n!pip install \\\n    tqdm\nimport json",
        "%%bash\npip install torch==2.0\necho done",
        "%%capture\nimport seaborn",
        "%%html\n<b>import nothing</b>",
        "def f():\n    import numpy\n    !pip install -r nowhere.txt\n    return numpy\n"
        "%load_ext sql\n%load_ext autoreload",
    )
    assert found == [
        (1, 1, "import", "os", "", "", False),
        (1, 3, "pip-install", "requests", ">=2", "pip", False),
        (1, 3, "pip-install", "six", "", "pip", False),
        (1, 4, "pip-install", "numpy", "==2.0", "pip", False),
        (1, 5, "pip-install", "scipy", "=1.11", "conda", True),
        (1, 7, "import", "yaml", "", "", False),
        (1, 9, "pip-install", "tqdm", "", "pip", False),
        (1, 11, "import", "json", "", "", False),
        (2, 2, "pip-install", "torch", "==2.0", "pip", False),
        (3, 2, "import", "seaborn", "", "", False),
        (5, 2, "import", "numpy", "", "", False),
        (5, 3, "pip-install", "nowhere.txt", "", "pip", True),
        (5, 5, "import", "sql", "", "", False),
    ]


def test_imports_everywhere_and_optional_ones(tmp_path: Path) -> None:
    path = tmp_path / "mod.py"
    path.write_text(
        "import a.b.c as d\n"
        "from e.f import g\n"
        "from . import local\n"
        "from .pkg import other\n"
        "def f():\n"
        "    import h\n"
        "try:\n"
        "    import i\n"
        "    from j import k\n"
        "except (ModuleNotFoundError, ValueError):\n"
        "    import fallback\n"
        "else:\n"
        "    import after\n"
        "try:\n"
        "    import strict\n"
        "except KeyError:\n"
        "    pass\n"
        "import importlib, contextlib\n"
        "m = importlib.import_module('dyn.sub')\n"
        "with contextlib.suppress(ImportError):\n"
        "    import suppressed\n"
    )
    found, _ = checker.read_requests(checker.Source(path, str(path), "python"))
    assert [(r.name, r.line, r.optional) for r in found] == [
        ("a", 1, False),
        ("e", 2, False),
        ("h", 6, False),
        ("i", 8, True),
        ("j", 9, True),
        ("fallback", 11, False),
        ("after", 13, False),
        ("strict", 15, False),
        ("importlib", 18, False),
        ("contextlib", 18, False),
        ("dyn", 19, False),
        ("suppressed", 21, True),
    ]


def test_cell_that_does_not_parse_still_gives_its_imports(tmp_path: Path) -> None:
    found = requests_of(
        tmp_path, "import pandas\nfrom lightgbm import (\nx = = 1\nimport numpy, scipy"
    )
    assert [(r[1], r[3]) for r in found] == [
        (1, "pandas"),
        (2, "lightgbm"),
        (4, "numpy"),
        (4, "scipy"),
    ]


def test_inventory_and_catalog(env_datadir: DataDir) -> None:
    ds = find_environment("datascience")
    found = inventory(prefix_for(ds, env_datadir))
    assert found.modules["sklearn"] == ["scikit-learn"]
    assert found.modules["yaml"] == ["pyyaml"]
    assert found.distributions["pandas"] == ds.packages["pandas"]
    assert "os" in found.stdlib and "pandas" not in found.stdlib
    cache = prefix_for(ds, env_datadir) / ".dsml-inventory.json"
    assert json.loads(cache.read_text())["modules"]["sklearn"] == ["scikit-learn"]

    path = write_catalog(env_datadir)
    assert path == catalog_path(env_datadir) == env_datadir.jupyter_data / "dsml-catalog.json"
    catalog = json.loads(path.read_text())
    envs = {e["name"]: e for e in catalog["environments"]}
    assert set(envs) == {"python-minimal", "datascience"}
    assert envs["datascience"]["version"] == ds.version
    assert envs["datascience"]["display_name"] == ds.display_name
    assert "pandas" in envs["datascience"]["modules"]
    assert "pandas" not in envs["python-minimal"]["modules"]
    assert catalog["aliases"]["sklearn"] == "scikit-learn"
