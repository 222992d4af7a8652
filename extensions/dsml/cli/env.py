"""`dsml env list | build`: the curated environments and their local virtualenvs."""

from __future__ import annotations

import argparse
import json

from dsml.cli.options import add_location_options, resolve
from dsml.environments import build as env_build
from dsml.environments import find_environment, list_environments


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register `dsml env`."""
    parser = sub.add_parser("env", help="list and build curated environments")
    env_sub = parser.add_subparsers(dest="env_command", required=True, metavar="ACTION")
    listing = env_sub.add_parser("list", help="name, description, build status and lock hash")
    listing.add_argument("--json", action="store_true", help="print JSON")
    build = env_sub.add_parser("build", help="build an environment's lock into a virtualenv")
    build.add_argument("names", nargs="*", help="environment names (default: all in settings)")
    build.add_argument("--force", action="store_true", help="rebuild even if already built")
    build.add_argument("--quiet", action="store_true", help="hide the installer's output")
    for p in (listing, build):
        add_location_options(p)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Carry out `dsml env ...`."""
    settings, datadir = resolve(args)
    if args.env_command == "list":
        rows = []
        for env in list_environments():
            state = env_build.status(env, datadir)
            rows.append(
                {
                    "name": env.name,
                    "display_name": env.display_name,
                    "description": env.description,
                    "status": state.state,
                    "version": env.version,
                    "lock_sha256": env.lock_sha256,
                    "kernel": env.kernel_name,
                    "image": env.image_tag,
                    "packages": len(env.packages),
                }
            )
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            print(f"{'NAME':<16} {'STATUS':<9} {'LOCK':<13} {'PKGS':>4}  DESCRIPTION")
            for r in rows:
                print(
                    f"{r['name']:<16} {r['status']:<9} {r['version']:<13} {r['packages']:>4}  "
                    f"{r['description']}"
                )
        return 0
    datadir.ensure()
    names = args.names or settings["environments"]
    for name in names:
        env = find_environment(name)
        env_build.build(env, datadir, force=args.force, quiet=args.quiet)
        print(f"{env.name}: built {env.version}, kernel {env.kernel_name}")
    return 0
