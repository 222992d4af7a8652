"""`dsml users add | list | reset-password`: accounts through the hub API with the admin token.

With single sign-on the hub keeps no passwords: `add` creates the account in its group and says
that it signs in through the identity provider; `reset-password` refuses with one line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os

from dsml.cli import accounts
from dsml.cli.options import add_location_options, resolve
from dsml.client import HubClient, find_hub_url
from dsml.datadir import ADMIN_TOKEN_SECRET
from dsml.exceptions import HubError
from dsml.settings import GROUPS


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register `dsml users`."""
    parser = sub.add_parser("users", help="create and list user accounts")
    users_sub = parser.add_subparsers(dest="users_command", required=True, metavar="ACTION")

    add = users_sub.add_parser(
        "add", help="create an account and print its password once (none with single sign-on)"
    )
    add.add_argument("name", help="user name (lower-case letters, digits, . _ -)")
    add.add_argument("--group", required=True, choices=GROUPS, help="the user's group")
    listing = users_sub.add_parser("list", help="list users and their groups")
    reset = users_sub.add_parser("reset-password", help="set a new generated password")
    reset.add_argument("name")
    for p in (add, listing, reset):
        add_location_options(p)
        p.add_argument("--hub-url", default=None, help="hub URL (default: the running platform)")
        p.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run)


def _client(args: argparse.Namespace) -> HubClient:
    _, datadir = resolve(args)
    token = os.environ.get("DSML_ADMIN_TOKEN")
    if not token:
        path = datadir.secrets / ADMIN_TOKEN_SECRET
        try:
            token = path.read_text().strip()
        except OSError:
            raise HubError(
                f"no admin token at {path}: start the platform with `dsml up` first, "
                "or set DSML_ADMIN_TOKEN"
            ) from None
    return HubClient(find_hub_url(datadir, args.hub_url), token)


async def _run(args: argparse.Namespace) -> int:
    async with _client(args) as hub:
        if args.users_command == "add":
            password = await accounts.add_user(hub, args.name, args.group)
            record = {"name": args.name, "group": args.group, "password": password}
            if password is None:
                record["sign_in"] = accounts.SSO_SIGN_IN
            if args.json:
                print(json.dumps(record))
            else:
                print(f"created {args.name} in {args.group}")
                if password is None:
                    print(f"no password: {args.name} signs in {accounts.SSO_SIGN_IN}")
                else:
                    print(f"password: {password}   (shown once; change it at /hub/change-password)")
        elif args.users_command == "reset-password":
            password = await accounts.reset_password(hub, args.name)
            if args.json:
                print(json.dumps({"name": args.name, "password": password}))
            else:
                print(f"new password for {args.name}: {password}   (shown once)")
        else:
            rows = await accounts.list_users(hub)
            if args.json:
                print(json.dumps(rows, indent=2))
            else:
                print(f"{'NAME':<20} {'GROUPS':<32} {'ADMIN':<6} SERVER")
                for r in rows:
                    groups = ",".join(r["groups"]) or "-"
                    admin = "yes" if r["admin"] else "no"
                    print(f"{r['name']:<20} {groups:<32} {admin:<6} {r['server']}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Carry out `dsml users ...`."""
    return asyncio.run(_run(args))
