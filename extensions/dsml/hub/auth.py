"""Password login for the platform: nothing here but logging in.

The login itself is jupyterhub-nativeauthenticator (bcrypt hashes in the hub database, lock-out
after failed attempts, a change-password page). Self sign-up is off: accounts are made by admins
(`dsml users add`), which set the first password through `PUT /hub/api/dsml/users/NAME/password`.
The platform's own pages and APIs (environments, package requests, health) are the `portal`
service (dsml.portal), so they work whatever the authenticator is.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import bcrypt
from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.scopes import needs_scope
from nativeauthenticator import NativeAuthenticator
from nativeauthenticator.orm import UserInfo
from tornado import web
from traitlets import Bool

from dsml.hub.accounts import AccountsAuthenticator

BCRYPT_NICENESS = 5
"""How much lower the bcrypt threads' CPU priority is than the hub's loop (nice increment)."""


def _behind_the_loop() -> None:
    """Run this thread at a lower CPU priority than the hub's event loop (Linux: per thread)."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BCRYPT_NICENESS)


BCRYPT = ThreadPoolExecutor(
    max_workers=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 2,
    thread_name_prefix="dsml-bcrypt",
    initializer=_behind_the_loop,
)
"""Where password hashes are made and checked: off the hub's event loop, one thread per core at
most and below the loop's priority. On the default executor (cores + 4 threads at the loop's
priority), 200 users signing in on 2 cores kept six threads hashing beside the loop's one:
/hub/health took up to 9.6 s; two threads at the loop's priority still 7.8 s; niced, 1.5 s
(bench/README.md, "Load"). The price: under a full machine sign-ins wait longer for their hash.
The threads start on first use."""


MAX_PASSWORD_BYTES = 72
"""The longest password bcrypt hashes (in UTF-8 bytes)."""


class PasswordAPIHandler(APIHandler):
    """Set a user's password and mark the account authorized (admins only)."""

    @needs_scope("admin:users")
    async def put(self, user_name: str) -> None:
        """Body: {"password": "..."}; 400 on a weak or unusable password, 404 on an unknown user."""
        body = self.get_json_body() or {}
        password = body.get("password") if isinstance(body, dict) else None
        minimum = self.authenticator.minimum_password_length
        if not isinstance(password, str) or len(password) < minimum:
            raise web.HTTPError(400, f"password must be a string of at least {minimum} characters")
        try:
            encoded = password.encode()
        except UnicodeEncodeError:
            # JSON may carry an unpaired surrogate (\ud800), which no UTF-8 text holds
            raise web.HTTPError(400, "password must be valid Unicode text") from None
        if len(encoded) > MAX_PASSWORD_BYTES:
            # bcrypt refuses longer input (it would otherwise ignore what follows)
            raise web.HTTPError(
                400,
                f"password is {len(encoded)} bytes in UTF-8; the limit is {MAX_PASSWORD_BYTES}",
            )
        if self.authenticator.check_common_password and self.authenticator.is_password_common(
            password
        ):
            raise web.HTTPError(400, "password is on the list of common passwords; pick another")
        user = self.find_user(user_name)
        if user is None:
            raise web.HTTPError(
                404, f"no user {user_name!r}; create it first (POST /hub/api/users/{user_name})"
            )
        hashed = await asyncio.get_running_loop().run_in_executor(
            BCRYPT, bcrypt.hashpw, encoded, bcrypt.gensalt()
        )
        info = UserInfo.find(self.db, user.name)
        if info is None:
            info = UserInfo(username=user.name, password=hashed, is_authorized=True)
            self.db.add(info)
        else:
            info.password = hashed
            info.is_authorized = True
        self.db.commit()
        self.write(json.dumps({"name": user.name, "authorized": True}))


def _password_matches(password: str, stored: bytes | None) -> bool:
    """Whether `password` hashes to the stored bcrypt hash (False for none or a broken one)."""
    if not stored:
        return False
    try:
        # UnicodeEncodeError (an unpaired surrogate) is a ValueError too
        return bcrypt.checkpw(password.encode(), stored)
    except ValueError:
        return False


class DsmlAuthenticator(AccountsAuthenticator, NativeAuthenticator):
    """NativeAuthenticator with admin-made accounts and an admin API to set passwords.

    As root, each user also gets a system account, locked when the user is deleted.
    """

    enable_signup = Bool(False, config=True, help="Allow people to request an account themselves.")
    allow_all = Bool(
        True,
        config=True,
        help="Let every authorized account log in (accounts exist only when an admin made them).",
    )

    async def authenticate(self, handler, data):  # type: ignore[no-untyped-def]
        """NativeAuthenticator's check, with the bcrypt comparison off the hub's event loop.

        bcrypt takes about a quarter of a second by design; NativeAuthenticator runs it in the
        hub's event loop, so every sign-in froze the whole hub (proxying, APIs, other sign-ins)
        for that long. The database lookups stay on the loop (the hub's session is not shared
        with threads); only the hash runs in a thread.
        """
        username = self.normalize_username(data["username"])
        password = data["password"]
        user = self.get_user(username)
        if not user:
            return None
        if self.allowed_failed_logins and self.is_blocked(username):
            return None
        stored = user.password
        valid = await asyncio.get_running_loop().run_in_executor(
            BCRYPT, _password_matches, password, stored
        )
        validations = [user.is_authorized, valid]
        if user.has_2fa:
            validations.append(user.is_valid_token(data.get("2fa")))
        if all(validations):
            self.successful_login(username)
            return username
        self.add_login_attempt(username)
        return None

    def get_handlers(self, app):  # type: ignore[no-untyped-def]
        """NativeAuthenticator's login and change-password pages, and the password API the
        `dsml` CLI uses.

        Its sign-up, e-mail confirmation and authorization pages are left out: accounts are
        made by admins, and its `/authorize/NAME` and `/discard/NAME` change an account on a
        plain GET, which a link an admin follows could trigger (tests/access_matrix.yaml).
        """
        kept = {r"/login", r"/change-password", r"/change-password/([^/]+)"}
        native = [h for h in super().get_handlers(app) if h[0] in kept]
        return [(r"/api/dsml/users/([^/]+)/password", PasswordAPIHandler), *native]
