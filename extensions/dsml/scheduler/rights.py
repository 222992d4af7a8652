"""Whether a job's owner may still run jobs: asked of the hub with the service's own token.

A job keeps running as its owner long after the request that created it, so the right to run
jobs (`custom:dsml:jobs:run`, or `jobs:admin`) is checked again on every write and whenever a
run is dispatched. The hub knows which roles a user holds directly and through their groups;
the roles that grant the right are named in `run_roles` (the hub config derives them from its
own role definitions). Answers are cached for `cache_seconds`, so dispatch stays fast.

When the hub does not answer, jobs keep running as they did (a hub restart must not stop every
scheduled report) and the question is asked again after `cache_seconds`; the hub's API calls
fail meanwhile anyway, so nobody gains a right by it.
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import quote

import httpx
from traitlets import Float, List, Unicode
from traitlets.config import LoggingConfigurable

log = logging.getLogger("dsml.scheduler")


class HubUnavailable(Exception):
    """The hub did not answer: keep what was decided, ask again later."""


class OwnerRights(LoggingConfigurable):
    """The hub's answer to "may NAME run jobs?", cached briefly.

    The base class allows everyone (a scheduler without a hub, as in-process tests run it);
    `HubOwnerRights` asks the hub. Subclass `lookup` to answer differently.
    """

    cache_seconds = Float(
        60.0,
        config=True,
        help="Seconds an owner's rights are trusted before the hub is asked again.",
    )

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._cache: dict[str, tuple[float, str | None]] = {}

    async def lookup(self, owner: str) -> str | None:
        """None when `owner` may run jobs, else the reason they may not (one line)."""
        return None

    async def refusal(self, owner: str) -> str | None:
        """`lookup`, cached for `cache_seconds`; a hub that does not answer changes nothing."""
        now = time.monotonic()
        cached = self._cache.get(owner)
        if cached and now - cached[0] < self.cache_seconds:
            return cached[1]
        try:
            answer = await self.lookup(owner)
        except HubUnavailable as e:
            log.warning("rights of %s unknown, asking again later: %s", owner, e)
            answer = cached[1] if cached else None
        self._cache[owner] = (now, answer)
        return answer

    def forget(self, owner: str | None = None) -> None:
        """Drop the cached answer for `owner` (all answers with None)."""
        if owner is None:
            self._cache.clear()
        else:
            self._cache.pop(owner, None)


class HubOwnerRights(OwnerRights):
    """Ask the hub's REST API: the user's roles and groups, and each group's roles."""

    hub_api_url = Unicode("", config=True, help="URL of the hub's REST API (set by the app).")
    api_token = Unicode("", config=True, help="The service's hub API token (set by the app).")
    run_roles = List(
        Unicode(),
        config=True,
        help="Hub roles whose scopes grant custom:dsml:jobs:run or custom:dsml:jobs:admin "
        "(written by the hub config); empty: only check that the owner still exists.",
    )

    async def _get(self, client: httpx.AsyncClient, path: str) -> dict[str, Any] | None:
        try:
            r = await client.get(f"{self.hub_api_url.rstrip('/')}/{path}")
        except httpx.HTTPError as e:
            raise HubUnavailable(f"the hub did not answer: {e}") from None
        if r.status_code == 404:
            return None
        if r.status_code != 200:
            raise HubUnavailable(f"the hub answered {r.status_code} to GET {path}")
        return r.json()

    async def lookup(self, owner: str) -> str | None:
        """None when the hub says `owner` holds a role that grants running jobs."""
        headers = {"Authorization": f"token {self.api_token}"}
        async with httpx.AsyncClient(headers=headers, timeout=10) as client:
            user = await self._get(client, f"users/{quote(owner, safe='')}")
            if user is None:
                return f"its owner {owner} no longer exists on the hub"
            if not self.run_roles:
                return None
            roles = set(user.get("roles") or [])
            for group in user.get("groups") or []:
                model = await self._get(client, f"groups/{quote(group, safe='')}")
                roles |= set((model or {}).get("roles") or [])
        if roles & set(self.run_roles):
            return None
        groups = ", ".join(user.get("groups") or []) or "none"
        return (
            f"its owner {owner} may no longer run jobs (no role granting custom:dsml:jobs:run; "
            f"groups: {groups})"
        )
