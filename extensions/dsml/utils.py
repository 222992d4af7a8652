"""Small functions used in unrelated places (the CLI, the scheduler service, its workers)."""

from __future__ import annotations

import sys


def skip_slow_format_checks() -> None:
    """Stop jsonschema from importing rfc3987_syntax, which compiles a grammar for ~3 s.

    jsonschema imports it for IRI format checks when it is installed (jupyter-events pulls it
    in); nbformat and our settings never check IRIs. Entry points call this first, so a CLI
    command or a service starts in about a second instead of four.
    """
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
