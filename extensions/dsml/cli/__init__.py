"""The `dsml` command line: one module per command group, each a thin layer over the library."""

from __future__ import annotations

import argparse
import sys

from dsml.exceptions import DsmlError


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every command group's subcommands."""
    # jsonschema imports rfc3987_syntax when it is installed (jupyter-events pulls it in), which
    # compiles a grammar for 3 s; the CLI checks no IRI formats, so it opts out of that import
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
    from dsml.cli import env, schedule, up, users

    parser = argparse.ArgumentParser(
        prog="dsml", description="dsml-platform: run and manage the data science platform."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (up, users, env, schedule):
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; a DsmlError prints one line on stderr and sets the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except DsmlError as e:
        print(f"dsml {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
