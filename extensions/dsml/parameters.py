"""Typed notebook parameters: checking values against a notebook's declared types.

The schema comes from the scheduler (Papermill reads the `parameters` cell); these rules need
no Papermill, so the CLI and the JupyterLab bridge read `-p name=value` with them too.
"""

from __future__ import annotations

import ast
import json
from typing import Any

from dsml.exceptions import DsmlError

BUILTINS = ("scheduled_for",)
"""Parameters the scheduler always injects (ISO timestamp of the cron tick, or of the request)."""


MAX_PARAMETERS_BYTES = 512 * 1024
"""Largest set of parameter values, as JSON, in bytes: they are written into the notebook as
literals and kept with every run; data belongs in the job's input files."""

MAX_DEPTH = 16
"""Deepest nesting of lists and objects in one parameter value (a config, not a data tree)."""


def depth(value: Any) -> int:
    """How deeply lists and objects nest in `value` (a scalar is 0), without recursing."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children = list(item.values())
        elif isinstance(item, list | tuple):
            children = list(item)
        else:
            continue
        deepest = max(deepest, level)
        if level > MAX_DEPTH:
            break  # already too deep: no need to walk the rest
        stack += [(child, level + 1) for child in children]
    return deepest


class ParameterError(DsmlError):
    """A parameter value that the notebook does not declare, or of the wrong type."""

    exit_code = 2


def matches(kind: str, value: Any) -> bool:
    """Whether `value` fits the declared kind (int, float, str, bool, list, dict or any)."""
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
    """The values, if each names a declared parameter of the right type; else ParameterError."""
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ParameterError(
            f"parameters must be an object of name: value, found {type(values).__name__}"
        )
    for name, value in values.items():
        if name in BUILTINS:
            raise ParameterError(f"parameter {name!r} is set by the scheduler and cannot be given")
        if name not in schema:
            declared = ", ".join(sorted(schema)) or "none (the notebook has no parameters cell)"
            raise ParameterError(f"unknown parameter {name!r}; the notebook declares: {declared}")
        kind = schema[name]["type"]
        if not matches(kind, value):
            raise ParameterError(
                f"parameter {name!r} must be of type {kind} "
                f"(declared {schema[name]['inferred_type']}), got {type(value).__name__} {value!r}"
            )
        levels = depth(value)
        if levels > MAX_DEPTH:
            raise ParameterError(
                f"parameter {name!r} is nested more than {MAX_DEPTH} levels deep; "
                f"the limit is {MAX_DEPTH} (pass a flatter value or an input file)"
            )
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            raise ParameterError(f"parameter {name!r} is not JSON-serialisable") from None
    size = len(json.dumps(values).encode())
    if size > MAX_PARAMETERS_BYTES:
        raise ParameterError(
            f"parameters are {size:,} bytes as JSON; the limit is {MAX_PARAMETERS_BYTES:,} "
            "bytes (put large data in the job's input files)"
        )
    return dict(values)


def read_cli_value(schema: dict[str, dict[str, Any]], name: str, raw: str) -> Any:
    """Turn `-p name=raw` into a typed value, read according to the parameter's declared type.

    A str parameter takes raw as it is; int, float and bool must parse as such; list, dict and
    untyped parameters read a Python or JSON literal, falling back to the string.
    """
    if name not in schema:
        declared = ", ".join(sorted(schema)) or "none"
        raise ParameterError(f"unknown parameter {name!r}; the notebook declares: {declared}")
    kind = schema[name]["type"]
    if kind == "str":
        return raw
    if kind == "bool":
        low = raw.strip().lower()
        if low in ("true", "1", "yes"):
            return True
        if low in ("false", "0", "no"):
            return False
        raise ParameterError(f"parameter {name!r} is a bool: use true or false, not {raw!r}")
    if kind in ("int", "float"):
        try:
            return int(raw) if kind == "int" else float(raw)
        except ValueError:
            raise ParameterError(f"parameter {name!r} is an {kind}: {raw!r} is not one") from None
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        if kind in ("list", "dict"):
            raise ParameterError(
                f"parameter {name!r} is a {kind}: {raw!r} is not a literal"
            ) from None
        return raw
    if not matches(kind, value):
        raise ParameterError(f"parameter {name!r} is a {kind}: {raw!r} is a {type(value).__name__}")
    return list(value) if isinstance(value, tuple) else value
