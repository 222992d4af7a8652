"""`dsml helm values`: the chart's generated `hub.services` and `hub.loadRoles` as YAML.

The chart's values.yaml carries this output between markers (helm/dsml-platform); the hub pod
builds the same services and roles at start, so the chart and the code cannot drift apart.
"""

from __future__ import annotations

import argparse

import yaml


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register `dsml helm values`."""
    p = sub.add_parser("helm", help="values for the Helm chart on Zero to JupyterHub")
    commands = p.add_subparsers(dest="helm_command", required=True, metavar="SUBCOMMAND")
    values = commands.add_parser(
        "values", help="print the generated hub.services and hub.loadRoles (z2jh 4.4 values)"
    )
    values.add_argument(
        "--indent",
        type=int,
        default=0,
        help="spaces before every line (to paste below a key, e.g. 2 under jupyterhub:)",
    )
    values.set_defaults(func=run_values)


def run_values(args: argparse.Namespace) -> int:
    """Print helm_values() as YAML, keys in the order the code builds them."""
    # dsml.hub imports JupyterHub (the CLI must not); the values module loads it only here
    import importlib

    kubernetes = importlib.import_module("dsml.hub.kubernetes")
    text = yaml.safe_dump(kubernetes.helm_values(), sort_keys=False, width=100)
    pad = " " * args.indent
    print("".join(pad + line if line.strip() else line for line in text.splitlines(True)), end="")
    return 0
