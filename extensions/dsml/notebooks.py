"""Notebooks: reading one with one-line errors, and rendering one as HTML. One home for both.

Not JSON, JSON that is not a notebook, a binary file or a file over the size limit each raise
NotebookError (exit code 2 in the CLI, 400 in the services) naming the file and what was
wrong, never a traceback. Every process reads notebooks through these functions: the CLI, the
JupyterLab bridge, the scheduler service and its workers, the environment checker.
"""

from __future__ import annotations

import ast
import glob
import io
import json
import os
import tokenize
from pathlib import Path
from typing import Any

from dsml.exceptions import DsmlError

MAX_NOTEBOOK_BYTES = 50 * 1024 * 1024
"""Largest notebook file the CLI reads, in bytes."""


CELL_TYPES = ("code", "markdown", "raw")
"""The cell types of nbformat 4."""


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
        if cell["cell_type"] not in CELL_TYPES:
            raise NotebookError(
                f"{display}: cell {index} has cell_type {cell['cell_type'][:40]!r}; "
                f"nbformat 4 cells are {', '.join(CELL_TYPES)}"
            )
        # the executor and the renderers index these without checking: a wrong type there
        # would fail a run far from the request that caused it
        if not isinstance(cell.get("metadata", {}), dict):
            raise NotebookError(f"{display}: cell {index} has metadata that is not an object")
        if cell["cell_type"] == "code" and not isinstance(cell.get("outputs", []), list):
            raise NotebookError(f"{display}: cell {index} has outputs that are not a list")
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


def files_named_by(
    notebook: dict[str, Any],
    folder: Path,
    max_files: int = 20,
    max_bytes: int = 20 * 2**20,
) -> dict[str, Path]:
    """The files under `folder` that the notebook's code names as string literals.

    One rule for every side that publishes an app (the `dsml publish` CLI, JupyterLab's
    "Publish as app…"), so a notebook takes the same files with it whichever way it is
    published. `folder` is the notebook's folder. A string literal in a code cell counts when,
    read as a path relative to `folder`, it names a regular file, a folder (every file below
    it), or a glob pattern (`"data/*.csv"`). Never taken: absolute paths, `~`, paths leaving
    `folder` (`..`, or a symlink pointing out), hidden files and folders (`.env` holds secrets),
    and `"."` (a separator more often than the folder). Returns relative POSIX path -> file,
    sorted; more than `max_files` files or `max_bytes` bytes in all is a DsmlError naming the
    count and the limit, never a silent cut (an app missing a file fails later, far away).
    """
    root = Path(folder).resolve()

    def literals(source: str) -> list[str]:
        found: list[str] = []
        try:
            for tok in tokenize.generate_tokens(io.StringIO(source).readline):
                if tok.type != tokenize.STRING or len(tok.string) > 4096:
                    continue
                try:
                    value = ast.literal_eval(tok.string)
                except (ValueError, SyntaxError):
                    continue  # an f-string: what it names is only known when it runs
                if isinstance(value, str):
                    found.append(value)
        except (tokenize.TokenError, IndentationError, SyntaxError):
            pass  # magics or another kernel's language: keep the literals read so far
        return found

    def inside(rel: str) -> Path | None:
        """The file `rel` names below the root, or None when it leaves it or is hidden."""
        parts = Path(rel).parts
        if not parts or any(p.startswith(".") for p in parts):
            return None
        path = root / rel
        try:
            real = path.resolve()
        except (OSError, RuntimeError):
            return None
        return path if real.is_relative_to(root) and real != root else None

    def below(path: Path) -> list[Path]:
        out = []
        for dirpath, dirs, names in os.walk(path, followlinks=False):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            out += [Path(dirpath) / n for n in sorted(names) if not n.startswith(".")]
            if len(out) > max_files:
                break  # already too many: no need to walk a big tree to say so
        return out

    chosen: dict[str, Path] = {}
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        source = source if isinstance(source, str) else "".join(source)
        # magics and shell lines (`%pip install x`, `!ls`) are not Python: blank them first
        source = "".join(
            "\n" if line.lstrip().startswith(("%", "!")) else line
            for line in source.splitlines(True)
        )
        for value in literals(source):
            text = value.strip()
            if not text or "\n" in text or "\x00" in text or text.startswith(("/", "~")):
                continue
            rel = os.path.normpath(text)
            if rel in (".", "..") or rel.startswith("../"):
                continue
            if glob.has_magic(rel):
                candidates = [
                    Path(p) for p in sorted(glob.glob(rel, root_dir=root))[: max_files + 1]
                ]
            else:
                candidates = [Path(rel)]
            for candidate in candidates:
                path = inside(candidate.as_posix())
                if path is None:
                    continue
                files = below(path) if path.is_dir() else [path] if path.is_file() else []
                for f in files:
                    key = f.relative_to(root).as_posix()
                    if inside(key) is not None and f.is_file():
                        chosen[key] = f
            if len(chosen) > max_files:
                raise DsmlError(
                    f"the notebook names more than {max_files} files under {root} (the limit): "
                    "name the files the app needs one by one"
                )
    total = sum(f.stat().st_size for f in chosen.values())
    if total > max_bytes:
        raise DsmlError(
            f"the files the notebook names under {root} hold {total:,} bytes; the limit is "
            f"{max_bytes:,}: move large data out of the notebook's folder or name fewer files"
        )
    return dict(sorted(chosen.items()))
