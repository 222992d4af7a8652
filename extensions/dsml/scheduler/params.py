"""Typed notebook parameters: the schema Papermill infers, validation, and reading CLI values.

Values are checked against the declared type when a job or run is submitted (a 400 names the
parameter), and Papermill's translators turn them into typed literals in the notebook: never
raw source.
"""

from __future__ import annotations

import ast
import json
import os
import tempfile
from typing import Any

import nbformat
import papermill

from dsml.scheduler.exceptions import BadRequest

BUILTINS = ("scheduled_for",)
"""Parameters the scheduler always injects (ISO timestamp of the cron tick, or of the request)."""


def _kind(type_name: str) -> str:
    """Map Papermill's inferred type name to one of _TYPES."""
    t = (type_name or "").strip()
    if t.startswith("Optional[") and t.endswith("]"):
        t = t[len("Optional[") : -1]
    low = t.lower()
    for prefix, kind in (
        ("list", "list"),
        ("tuple", "list"),
        ("dict", "dict"),
        ("mapping", "dict"),
    ):
        if low.startswith(prefix):
            return kind
    if low in ("int", "float", "str", "bool"):
        return low
    return "any"


def parse_notebook(text: str) -> nbformat.NotebookNode:
    """Read notebook JSON, raising BadRequest with the reason when it is not a notebook."""
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception as e:  # noqa: BLE001 - nbformat raises many kinds; all mean "not a notebook"
        reason = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise BadRequest(f"notebook is not a valid .ipynb (nbformat 4): {reason}") from None
    if not isinstance(nb.get("cells"), list):
        raise BadRequest("notebook is not a valid .ipynb: it has no cells list")
    return nb


def infer_schema(nb: nbformat.NotebookNode) -> dict[str, dict[str, Any]]:
    """{name: {"type", "inferred_type", "default", "help"}} of the cell tagged `parameters`."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "notebook.ipynb")
        nbformat.write(nb, path)
        try:
            found = papermill.inspect_notebook(path)
        except Exception as e:  # noqa: BLE001 - papermill cannot inspect this kernel's language
            raise BadRequest(f"cannot read the notebook's parameters: {e}") from None
    return {
        name: {
            "type": _kind(p.get("inferred_type_name", "")),
            "inferred_type": p.get("inferred_type_name"),
            "default": p.get("default"),
            "help": p.get("help") or "",
        }
        for name, p in found.items()
    }


def _matches(kind: str, value: Any) -> bool:
    if kind == "any" or value is None:
        return True
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "list":
        return isinstance(value, list | tuple)
    if kind == "dict":
        return isinstance(value, dict)
    return True


def validate(schema: dict[str, dict[str, Any]], values: Any) -> dict[str, Any]:
    """Return the values if each names a declared parameter of the right type, else BadRequest."""
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise BadRequest(
            f"parameters must be an object of name: value, found {type(values).__name__}"
        )
    for name, value in values.items():
        if name in BUILTINS:
            raise BadRequest(f"parameter {name!r} is set by the scheduler and cannot be given")
        if name not in schema:
            declared = ", ".join(sorted(schema)) or "none (the notebook has no parameters cell)"
            raise BadRequest(f"unknown parameter {name!r}; the notebook declares: {declared}")
        kind = schema[name]["type"]
        if not _matches(kind, value):
            raise BadRequest(
                f"parameter {name!r} must be of type {kind} "
                f"(declared {schema[name]['inferred_type']}), got {type(value).__name__} {value!r}"
            )
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            raise BadRequest(f"parameter {name!r} is not JSON-serialisable") from None
    return dict(values)


def read_cli_value(schema: dict[str, dict[str, Any]], name: str, raw: str) -> Any:
    """Turn `-p name=raw` into a typed value, read according to the parameter's declared type.

    A str parameter takes raw as it is; int, float and bool must parse as such; list, dict and
    untyped parameters read a Python or JSON literal, falling back to the string.
    """
    if name not in schema:
        declared = ", ".join(sorted(schema)) or "none"
        raise BadRequest(f"unknown parameter {name!r}; the notebook declares: {declared}")
    kind = schema[name]["type"]
    if kind == "str":
        return raw
    if kind == "bool":
        low = raw.strip().lower()
        if low in ("true", "1", "yes"):
            return True
        if low in ("false", "0", "no"):
            return False
        raise BadRequest(f"parameter {name!r} is a bool: use true or false, not {raw!r}")
    if kind in ("int", "float"):
        try:
            return int(raw) if kind == "int" else float(raw)
        except ValueError:
            raise BadRequest(f"parameter {name!r} is an {kind}: {raw!r} is not one") from None
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        if kind in ("list", "dict"):
            raise BadRequest(f"parameter {name!r} is a {kind}: {raw!r} is not a literal") from None
        return raw
    if not _matches(kind, value):
        raise BadRequest(f"parameter {name!r} is a {kind}: {raw!r} is a {type(value).__name__}")
    return list(value) if isinstance(value, tuple) else value
