"""The `dsml` command line: one module per command group, each a thin layer over the library."""

from __future__ import annotations

import argparse
import sys

from dsml.exceptions import DsmlError
from dsml.utils import skip_slow_format_checks


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every command group's subcommands."""
    skip_slow_format_checks()
    from dsml.cli import apps, check, env, migrate, schedule, service, up, users

    parser = argparse.ArgumentParser(
        prog="dsml", description="dsml-platform: run and manage the data science platform."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (up, service, users, env, schedule, apps, migrate, check):
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
