"""A system account per hub user, made and locked by the hub (as The Littlest JupyterHub does).

When the platform runs as root, each hub user gets a Linux account (`dsml.system_accounts`
names it: prefix + readable name, a hash suffix when the name had to change): no login shell,
its home under the data dir (`<data>/users/<hub name>`, owned by the account, mode 0700).
The account is made when the hub adds the user (also for users already in the database when
the hub starts) and again, if missing, when their server starts; it is locked (password locked
and expired, home kept) when an admin deletes the user, and unlocked if the name comes back.

`SystemAccounts` is a mixin for the authenticator and the spawner, so both read one config
section (`c.SystemAccounts.enabled`, `.prefix`, `.homes`).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path
from typing import Any

from traitlets import Bool, Unicode, default
from traitlets.config import LoggingConfigurable

from dsml.system_accounts import NOLOGIN, Account, account_name, is_locked, isolated, lookup


class AccountError(RuntimeError):
    """A system account could not be made, unlocked or locked."""


def _run(cmd: list[str]) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise AccountError(
            f"`{' '.join(cmd)}` failed with exit code {result.returncode}"
            + (f": {detail[-1]}" if detail else "")
        )


def _own_home(home: Path, account: Account) -> None:
    """Make `home` exist, belong to the account and be private to it (0700).

    A home made before accounts existed (owned by the platform) is handed over with all it
    holds; symlinks are changed themselves, never followed.
    """
    home.mkdir(parents=True, exist_ok=True)
    if home.stat().st_uid != account.uid:
        for dirpath, dirnames, filenames in os.walk(home):
            for name in dirnames + filenames:
                os.lchown(os.path.join(dirpath, name), account.uid, account.gid)
        os.chown(home, account.uid, account.gid)
    os.chmod(home, 0o700)


def ensure_account(hub_name: str, prefix: str, home: Path) -> Account:
    """Make (or unlock) the account of `hub_name` and its home; return the account."""
    name = account_name(hub_name, prefix)
    account = lookup(name)
    if account is None:
        _run(
            [
                "useradd",
                "--home-dir",
                str(home),
                "--no-create-home",
                "--shell",
                NOLOGIN,
                "--user-group",
                "--comment",
                f"dsml user {hub_name}"[:60].replace(":", " "),
                name,
            ]
        )
        account = lookup(name)
        if account is None:
            raise AccountError(f"useradd reported success but account {name} does not exist")
    elif is_locked(name):
        _run(["usermod", "--unlock", "--expiredate", "", name])
    _own_home(home, account)
    return account


def lock_account(hub_name: str, prefix: str) -> str | None:
    """Lock the account of `hub_name` (password locked, expired); its home is kept.

    Returns the account name, or None when the user had no account.
    """
    name = account_name(hub_name, prefix)
    if lookup(name) is None:
        return None
    _run(["usermod", "--lock", "--expiredate", "1", name])
    return name


class SystemAccounts(LoggingConfigurable):
    """Mixin for the authenticator and the spawner: accounts on, their prefix, their homes."""

    enabled = Bool(
        config=True,
        help="Give each hub user a system account of their own (default: when running as root).",
    )
    prefix = Unicode("dsml-", config=True, help="Text every account name starts with.")
    homes = Unicode(
        "", config=True, help="Folder holding one home folder per user, named by hub name."
    )

    @default("enabled")
    def _enabled_default(self) -> bool:
        return isolated()

    def account_home(self, hub_name: str) -> Path:
        """The home folder of a hub user."""
        return Path(self.homes) / hub_name

    async def ensure_account(self, hub_name: str) -> Account | None:
        """Make the user's account and home if accounts are on (None when they are off)."""
        if not self.enabled:
            return None
        account = await asyncio.to_thread(
            ensure_account, hub_name, self.prefix, self.account_home(hub_name)
        )
        self.log.info("System account %s (uid %d) for user %s", account.name, account.uid, hub_name)
        return account


class AccountsAuthenticator(SystemAccounts):
    """Authenticator mixin: make the account when the hub adds a user, lock it on delete."""

    async def add_user(self, user: Any) -> None:
        """Add the user as the authenticator does, then make their account."""
        result = super().add_user(user)  # type: ignore[misc]
        if asyncio.iscoroutine(result):
            await result
        await self.ensure_account(user.name)

    async def delete_user(self, user: Any) -> None:
        """Delete the user as the authenticator does, then lock their account (home kept)."""
        result = super().delete_user(user)  # type: ignore[misc]
        if asyncio.iscoroutine(result):
            await result
        if self.enabled:
            name = await asyncio.to_thread(lock_account, user.name, self.prefix)
            if name:
                self.log.info("Locked system account %s of deleted user %s", name, user.name)


def with_accounts(authenticator_class: type) -> type:
    """`authenticator_class` with accounts made on add and locked on delete."""
    if issubclass(authenticator_class, AccountsAuthenticator):
        return authenticator_class
    return type(
        authenticator_class.__name__,
        (AccountsAuthenticator, authenticator_class),
        {"__module__": __name__, "__doc__": authenticator_class.__doc__},
    )
