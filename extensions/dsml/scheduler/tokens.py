"""Hub tokens for runs: a token of the job's owner, made for one run and gone with it.

A notebook that needs the platform (usage figures, publishing, `dsml run`) gets a token of
its owner, never one of the platform's. The scheduler asks the hub for it
(`POST /hub/api/users/NAME/tokens`, its `scheduler-run-tokens` role holds `tokens`), with the
scopes a user server's token has, expiring with the run; it deletes it when the run's worker ends.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import quote

import httpx

from dsml import scopes

log = logging.getLogger("dsml.scheduler.tokens")

RUN_TOKEN_SCOPES = scopes.SERVICE_USER_SCOPES
"""What a run's token may do: what a user server's token may (`scopes.SERVER_TOKEN_SCOPES`),
less reaching servers; the platform's rights of a server (`scopes.LAB_SCOPES`) come on top."""


@dataclass(frozen=True)
class RunToken:
    """A token of a run's owner: the secret and the hub's id for it (to delete it)."""

    token: str
    token_id: str
    owner: str


async def request_run_token(
    hub_api_url: str, service_token: str, owner: str, expires_in: int, note: str
) -> RunToken | None:
    """Ask the hub for a token of `owner` that expires in `expires_in` seconds.

    The owner's own rights bound it: an owner without the lab scopes gets the base scopes only.
    Returns None (the run goes on without a token, which is logged) when the hub refuses.
    """
    url = f"{hub_api_url.rstrip('/')}/users/{quote(owner, safe='')}/tokens"
    headers = {"Authorization": f"token {service_token}"}
    async with httpx.AsyncClient(timeout=10) as client:
        for wanted in (RUN_TOKEN_SCOPES + list(scopes.LAB_SCOPES), RUN_TOKEN_SCOPES):
            body = {"note": note, "expires_in": max(60, int(expires_in)), "scopes": wanted}
            try:
                r = await client.post(url, json=body, headers=headers)
            except httpx.HTTPError as e:
                log.warning("no token for %s's run: the hub did not answer (%s)", owner, e)
                return None
            if r.status_code == 201:
                data = r.json()
                return RunToken(token=data["token"], token_id=data["id"], owner=owner)
            if r.status_code != 400:
                break
    log.warning("no token for %s's run: the hub answered %s %s", owner, r.status_code, r.text[:200])
    return None


async def revoke_run_token(hub_api_url: str, service_token: str, token: RunToken) -> None:
    """Delete a run's token (best effort: it expires anyway)."""
    url = (
        f"{hub_api_url.rstrip('/')}/users/{quote(token.owner, safe='')}/tokens/"
        f"{quote(token.token_id, safe='')}"
    )
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            await client.delete(url, headers={"Authorization": f"token {service_token}"})
    except httpx.HTTPError as e:
        log.warning("could not delete the token of %s's run (%s); it expires", token.owner, e)
