"""Notebooks: reading one with one-line errors, and rendering one as HTML. One home for both.

Not JSON, JSON that is not a notebook, a binary file or a file over the size limit each raise
NotebookError (exit code 2 in the CLI, 400 in the services) naming the file and what was
wrong, never a traceback. Every process reads notebooks through these functions: the CLI, the
JupyterLab bridge, the scheduler service and its workers, the environment checker.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dsml.exceptions import DsmlError

MAX_NOTEBOOK_BYTES = 50 * 1024 * 1024
"""Largest notebook file the CLI reads, in bytes."""


class NotebookError(DsmlError):
    """A file or a text is not a readable nbformat 4 notebook."""

    exit_code = 2


def check_notebook(nb: Any, display: str) -> dict[str, Any]:
    """`nb` itself when it has the shape of an nbformat 4 notebook, else NotebookError."""
    if not isinstance(nb, dict) or "cells" not in nb and "worksheets" not in nb:
        found = type(nb).__name__ if not isinstance(nb, dict) else "an object without 'cells'"
        raise NotebookError(f"{display}: JSON but not a notebook (found {found})")
    major = nb.get("nbformat")
    if major != 4:
        hint = "; open and save it in JupyterLab to upgrade" if major in (1, 2, 3) else ""
        raise NotebookError(
            f"{display}: nbformat {major!r} is not supported, expected nbformat 4{hint}"
        )
    cells = nb.get("cells")
    if not isinstance(cells, list):
        raise NotebookError(f"{display}: JSON but not a notebook ('cells' is not a list)")
    for index, cell in enumerate(cells, start=1):
        source = cell.get("source") if isinstance(cell, dict) else None
        if not isinstance(cell, dict) or not isinstance(cell.get("cell_type"), str):
            raise NotebookError(f"{display}: cell {index} is not a notebook cell")
        if not (
            isinstance(source, str)
            or isinstance(source, list)
            and all(isinstance(s, str) for s in source)
        ):
            raise NotebookError(f"{display}: cell {index} has no text source")
    return nb


def parse_notebook(text: str | bytes, display: str = "notebook") -> dict[str, Any]:
    """The notebook in a JSON text (or UTF-8 bytes), checked by `check_notebook`."""
    if isinstance(text, bytes):
        if b"\x00" in text[:65536]:
            raise NotebookError(f"{display}: a binary file, not a notebook (.ipynb JSON)")
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise NotebookError(
                f"{display}: a binary file, not a notebook (not UTF-8 at byte {e.start})"
            ) from None
    try:
        nb = json.loads(text)
    except json.JSONDecodeError as e:
        raise NotebookError(
            f"{display}: not JSON (line {e.lineno} column {e.colno}: {e.msg}); "
            "a notebook is nbformat 4 JSON"
        ) from None
    except RecursionError:
        raise NotebookError(f"{display}: JSON nested too deeply to be a notebook") from None
    return check_notebook(nb, display)


def read_notebook(
    path: str | Path, limit: int = MAX_NOTEBOOK_BYTES, display: str | None = None
) -> dict[str, Any]:
    """The notebook at `path` as a dict (nbformat 4 JSON), or NotebookError."""
    p = Path(path)
    display = display or str(p)
    if not p.exists():
        raise NotebookError(f"{display}: no such file")
    if not p.is_file():
        raise NotebookError(f"{display}: not a file")
    size = p.stat().st_size
    if size > limit:
        raise NotebookError(
            f"{display}: {size:,} bytes is over the {limit:,} byte limit for a notebook"
        )
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise NotebookError(f"{display}: cannot be read ({e.strerror or e})") from None
    return parse_notebook(raw, display)


_exporter: Any = None


def warm_up() -> None:
    """Import nbconvert and build the HTML exporter now (it takes a second the first time)."""
    global _exporter
    if _exporter is None:
        import nbformat
        from nbconvert import HTMLExporter

        _exporter = HTMLExporter(template_name="lab")
        tiny = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
        _exporter.from_notebook_node(tiny)


def render_html(notebook: str | Path | dict[str, Any]) -> str:
    """A notebook (a path or a dict) as a standalone HTML page, JupyterLab's look."""
    import nbformat

    warm_up()
    if isinstance(notebook, dict):
        node = nbformat.from_dict(notebook)
    else:
        node = nbformat.read(str(notebook), as_version=4)
    body, _ = _exporter.from_notebook_node(node)
    return body
