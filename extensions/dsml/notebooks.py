"""Reading a notebook file a user names on the command line, with one-line errors.

Not JSON, JSON that is not a notebook, a binary file or a file over the size limit each raise
NotebookError (exit code 2) naming the file and what was wrong, never a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dsml.exceptions import DsmlError

MAX_NOTEBOOK_BYTES = 50 * 1024 * 1024
"""Largest notebook file the CLI reads, in bytes."""


class NotebookError(DsmlError):
    """A file is not a readable notebook."""

    exit_code = 2


def read_notebook(path: str | Path, limit: int = MAX_NOTEBOOK_BYTES) -> dict[str, Any]:
    """The notebook at `path` as a dict (nbformat 4 JSON), or NotebookError."""
    p = Path(path)
    if not p.exists():
        raise NotebookError(f"{p}: no such file")
    if not p.is_file():
        raise NotebookError(f"{p}: not a file")
    size = p.stat().st_size
    if size > limit:
        raise NotebookError(f"{p}: {size:,} bytes is over the {limit:,} byte limit for a notebook")
    raw = p.read_bytes()
    if b"\x00" in raw[:8192]:
        raise NotebookError(f"{p}: a binary file, not a notebook (.ipynb JSON)")
    try:
        nb = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise NotebookError(f"{p}: not UTF-8 text, so not a notebook") from None
    except ValueError as e:
        raise NotebookError(
            f"{p}: not JSON ({e.msg} at line {e.lineno}), so not a notebook"
        ) from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise NotebookError(f"{p}: JSON without a 'cells' list, so not a notebook")
    if nb.get("nbformat") != 4:
        raise NotebookError(f"{p}: nbformat {nb.get('nbformat')!r}; only nbformat 4 is read")
    return nb
