"""User accounts through the hub's REST API: create, set a password, join a group, list.

Used by `dsml users` and by the demo seeding of `dsml up`; the hub stays the only writer of its
database. With single sign-on (`auth.kind: oauth`) the hub keeps no passwords: accounts are
created with their group, and people sign in through the identity provider under the same name.
The running hub decides, not a settings file the CLI may not share with it: only the password
authenticator has the password endpoint (`PUT /hub/api/dsml/users/NAME/password`).
"""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path
from typing import Any

from dsml.client import HubClient
from dsml.exceptions import HubError, SettingsError
from dsml.settings import GROUPS
from dsml.utils import write_atomic

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")

DEMO_USERS = [
    ("admin", "platform-admins"),
    ("analyst", "analysts"),
    ("scientist", "data-scientists"),
    ("stakeholder", "stakeholders"),
    ("newcomer", "newcomers"),
]
"""One demo account per group: (name, group)."""


def new_password() -> str:
    """A random password of 16 URL-safe characters."""
    return secrets.token_urlsafe(12)


def check_name_and_group(name: str, group: str) -> None:
    """Raise SettingsError unless the name is a valid username and the group is known."""
    if not USERNAME.match(name):
        raise SettingsError(
            f"user name {name!r} is not allowed: use 1-64 lower-case letters, digits, '.', '_' "
            "or '-', starting with a letter or digit"
        )
    if group not in GROUPS:
        raise SettingsError(f"group {group!r} is not allowed: use one of {', '.join(GROUPS)}")


SSO_SIGN_IN = "through the identity provider (single sign-on), with the same user name"
"""How an account signs in when the hub keeps no passwords."""


class NoPasswordsError(HubError):
    """The hub's authenticator keeps no passwords (single sign-on)."""


async def set_password(hub: HubClient, name: str, password: str) -> None:
    """Set the password of `name`, an existing user.

    Raises NoPasswordsError when the hub has no password endpoint (an SSO authenticator): it
    answers 404 there even though the user exists.
    """
    answer = await hub.request(
        "PUT", f"dsml/users/{name}/password", {"password": password}, ok=(404,)
    )
    if answer.get("status") == 404:
        raise NoPasswordsError(
            f"this platform keeps no passwords: {name} signs in {SSO_SIGN_IN}; "
            "manage the password at the identity provider"
        )


async def add_user(
    hub: HubClient, name: str, group: str, password: str | None = None
) -> str | None:
    """Create `name` in `group` with a password (generated when None); return the password.

    Returns None when the hub keeps no passwords (single sign-on): the account is created and
    joins its group, and its owner signs in through the identity provider.
    Raises HubError if the user exists already.
    """
    check_name_and_group(name, group)
    existing = await hub.request("GET", f"users/{name}", ok=(404,))
    if existing.get("status") != 404:
        raise HubError(f"user {name!r} exists already; use `dsml users reset-password {name}`")
    await hub.request("POST", f"users/{name}")
    await hub.request("POST", f"groups/{group}/users", {"users": [name]})
    chosen = password or new_password()
    try:
        await set_password(hub, name, chosen)
    except NoPasswordsError:
        if password is not None:
            raise
        return None
    return chosen


async def reset_password(hub: HubClient, name: str) -> str:
    """Give an existing user a new generated password and return it.

    Raises HubError for an unknown user, NoPasswordsError with single sign-on.
    """
    existing = await hub.request("GET", f"users/{name}", ok=(404,))
    if existing.get("status") == 404:
        raise HubError(f"no user {name!r}; create it with `dsml users add {name} --group ...`")
    password = new_password()
    await set_password(hub, name, password)
    return password


async def list_users(hub: HubClient, page_size: int = 200) -> list[dict[str, Any]]:
    """Every user with their groups, admin flag and whether their server runs.

    The hub answers a page of users per call; this follows its `_pagination.next` offsets
    (asked for with the pagination media type) to the end.
    """
    users: list[dict[str, Any]] = []
    offset: int | None = 0
    while offset is not None:
        page = await hub.request(
            "GET",
            "users",
            params={"offset": str(offset), "limit": str(page_size)},
            headers={"Accept": "application/jupyterhub-pagination+json"},
        )
        users.extend(page["items"])
        following = (page.get("_pagination") or {}).get("next")
        offset = int(following["offset"]) if following else None
    return [
        {
            "name": u["name"],
            "groups": sorted(u.get("groups", [])),
            "admin": bool(u.get("admin")) or "platform-admins" in u.get("groups", []),
            "server": "running" if u.get("server") else "stopped",
            "last_activity": u.get("last_activity"),
        }
        for u in users
    ]


async def seed_demo_users(hub: HubClient, path: Path) -> list[dict[str, str | None]]:
    """Create the demo accounts that are missing and write them all to `path` (mode 0600).

    Accounts listed in an existing file are kept as they are, so re-running changes nothing.
    With single sign-on an account's password is null and `sign_in` says how it signs in.
    """
    try:
        accounts: list[dict[str, str | None]] = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        accounts = []
    known = {a["name"] for a in accounts}
    for name, group in DEMO_USERS:
        if name in known:
            continue
        existing = await hub.request("GET", f"users/{name}", ok=(404,))
        if existing.get("status") == 404:
            password = await add_user(hub, name, group)
        else:
            try:
                password = await reset_password(hub, name)
            except NoPasswordsError:
                password = None
        record: dict[str, str | None] = {"name": name, "password": password, "group": group}
        if password is None:
            record["sign_in"] = SSO_SIGN_IN
        accounts.append(record)
    write_atomic(path, json.dumps(accounts, indent=2) + "\n", mode=0o600)
    return accounts
