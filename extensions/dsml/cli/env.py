"""`dsml env list | show | build | request | requests | answer`: the curated environments.

Package requests go to the portal service's API (/services/portal/api/env-requests).
"""

from __future__ import annotations

import argparse
import json
import os

from dsml.cli.options import add_location_options, resolve
from dsml.client import PORTAL, Client, find_hub_url, service_api
from dsml.datadir import ADMIN_TOKEN_SECRET, DataDir
from dsml.environments import build as env_build
from dsml.environments import find_environment, list_environments
from dsml.environments.history import describe
from dsml.exceptions import SettingsError


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register `dsml env`."""
    parser = sub.add_parser("env", help="list and build curated environments")
    env_sub = parser.add_subparsers(dest="env_command", required=True, metavar="ACTION")
    listing = env_sub.add_parser("list", help="name, description, build status and lock hash")
    listing.add_argument("--json", action="store_true", help="print JSON")
    show = env_sub.add_parser(
        "show", help="packages and pinned versions, and what changed since the previous lock"
    )
    show.add_argument("name", help="environment name")
    show.add_argument("--json", action="store_true", help="print JSON")
    request = env_sub.add_parser("request", help="ask the platform team to add a package")
    request.add_argument("package", help="package name, optionally with a version: lightgbm>=4")
    request.add_argument("--env", required=True, help="environment it should be added to")
    request.add_argument("--reason", default="", help="what you need it for")
    requests = env_sub.add_parser("requests", help="list package requests (admins: everyone's)")
    answer = env_sub.add_parser("answer", help="(admins) set a request's status and answer")
    answer.add_argument("id", type=int)
    answer.add_argument("--status", required=True, choices=("open", "accepted", "rejected", "done"))
    answer.add_argument("--answer", default="", help="a note to the requester")
    for p in (request, requests, answer):
        p.add_argument("--hub-url", default=None, help="hub URL (default: $DSML_HUB_URL)")
        p.add_argument("--token", default=None, help="hub API token (default: your token)")
        p.add_argument("--json", action="store_true", help="print JSON")
    build = env_sub.add_parser("build", help="build an environment's lock into a virtualenv")
    build.add_argument("names", nargs="*", help="environment names (default: all in settings)")
    build.add_argument("--force", action="store_true", help="rebuild even if already built")
    build.add_argument("--quiet", action="store_true", help="hide the installer's output")
    for p in (listing, show, build, request, requests, answer):
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
    if args.env_command == "show":
        return _show(args, datadir)
    if args.env_command in ("request", "requests", "answer"):
        return _requests(args, datadir)
    datadir.ensure()
    names = args.names or settings["environments"]
    for name in names:
        env = find_environment(name)
        env_build.build(env, datadir, force=args.force, quiet=args.quiet)
        print(f"{env.name}: built {env.version}, kernel {env.kernel_name}")
    return 0


def _show(args: argparse.Namespace, datadir: DataDir) -> int:
    env = find_environment(args.name)
    record = describe(env, datadir)
    changes = record["changes"]
    if args.json:
        print(json.dumps(record, indent=2))
        return 0
    print(f"{env.name}: {env.display_name}")
    print(f"  {env.description}")
    print(f"  version {env.version} ({record['status']}), lock sha256 {env.lock_sha256}")
    print(f"  image {env.image_tag}, kernel {env.kernel_name}")
    if record["built_versions"]:
        print(f"  built versions here: {', '.join(record['built_versions'])}")
    print(f"  {len(env.packages)} packages:")
    for name, version in env.packages.items():
        print(f"    {name}=={version}")
    if changes is None:
        print("  no previous lock to compare with")
    else:
        total = sum(len(v) for v in changes.values())
        print(f"  changes since {record['previous']}: {total}")
        for kind, rows in changes.items():
            for row in rows:
                if "from" in row:
                    print(f"    {kind:<10} {row['name']} {row['from']} -> {row['to']}")
                else:
                    print(f"    {kind:<10} {row['name']} {row['version']}")
    return 0


def _requests(args: argparse.Namespace, datadir: DataDir) -> int:
    token = (
        args.token or os.environ.get("JUPYTERHUB_API_TOKEN") or os.environ.get("DSML_ADMIN_TOKEN")
    )
    if not token:
        admin = datadir.secrets / ADMIN_TOKEN_SECRET
        if args.env_command != "request" and admin.exists():
            token = admin.read_text().strip()
        else:
            raise SettingsError("no hub API token: pass --token or set JUPYTERHUB_API_TOKEN")
    url = find_hub_url(datadir, args.hub_url) + service_api(PORTAL)
    with Client(url, token) as portal:
        portal.hint_403 = " (pass --token or set JUPYTERHUB_API_TOKEN)"
        if args.env_command == "request":
            find_environment(args.env)
            row = portal.call(
                "POST",
                "env-requests",
                {"package": args.package, "environment": args.env, "reason": args.reason},
            )
            rows = [row]
        elif args.env_command == "answer":
            row = portal.call(
                "PATCH",
                f"env-requests/{args.id}",
                {"status": args.status, "answer": args.answer},
            )
            rows = [row]
        else:
            rows = list(portal.pages("env-requests", "requests"))
    if args.json:
        print(json.dumps(rows if args.env_command == "requests" else rows[0], indent=2))
        return 0
    if args.env_command == "request":
        print(f"request {rows[0]['id']}: {rows[0]['package']} in {rows[0]['environment']} (open)")
        return 0
    print(f"{'ID':>4}  {'USER':<14} {'PACKAGE':<24} {'ENV':<15} {'STATUS':<9} ANSWER")
    for r in rows:
        print(
            f"{r['id']:>4}  {r['user']:<14} {r['package']:<24} {r['environment']:<15} "
            f"{r['status']:<9} {r['answer']}"
        )
    return 0
