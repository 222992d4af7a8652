"""Typed notebook parameters on the service side: the schema Papermill infers, and validation.

Values are checked against the declared type when a job or run is submitted (a 400 names the
parameter), and Papermill's translators turn them into typed literals in the notebook: never
raw source.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import nbformat
import papermill

from dsml import notebooks, parameters
from dsml.scheduler.exceptions import BadRequest


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
        return nbformat.from_dict(notebooks.parse_notebook(text, "notebook"))
    except notebooks.NotebookError as e:
        raise BadRequest(str(e)) from None


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


def validate(schema: dict[str, dict[str, Any]], values: Any) -> dict[str, Any]:
    """Return the values if each names a declared parameter of the right type, else BadRequest."""
    try:
        return parameters.validate(schema, values)
    except parameters.ParameterError as e:
        raise BadRequest(str(e)) from None
