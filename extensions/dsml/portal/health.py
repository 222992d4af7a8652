"""The platform's health, checked from outside the hub: only through its REST API.

Plain async functions with explicit arguments. Each part answers "ok", "failing" (it answered,
wrongly) or "unreachable" (no answer in time); what went wrong goes to the portal's log, never
to the caller. What a service cannot see from here: the hub's database other than through an
authenticated hub call, and a managed service process the hub does not give a pid for.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from jupyterhub.utils import url_path_join

from dsml.client import ApiError, AsyncClient

OK = "ok"
FAILING = "failing"
UNREACHABLE = "unreachable"

log = logging.getLogger("dsml.portal.health")


class Unreachable(Exception):
    """Nothing answered (refused, timed out, reset)."""


class ProbeClient(AsyncClient):
    """An `AsyncClient` that tells "nothing answered" apart from an error answer."""

    def error(self, status: int, message: str, call: str = "") -> Exception:
        """An error answer is an ApiError; a failed connection (no `call`) is Unreachable."""
        if not call:
            return Unreachable(message)
        return super().error(status, message, call)


async def _verdict(part: str, call: Any) -> str:
    try:
        await call
    except Unreachable as e:
        log.warning("health: %s unreachable: %s", part, e)
        return UNREACHABLE
    except ApiError as e:
        log.warning("health: %s failing: %s", part, e)
        return FAILING
    return OK


async def check_hub(hub: ProbeClient) -> dict[str, str]:
    """The hub API, its database (an authenticated call reads the token from it), the proxy.

    The proxy check asks the hub for its routing table (the portal's role holds `proxy`).
    """
    checks = {"hub": await _verdict("hub API", hub.call("GET", ""))}
    if checks["hub"] == UNREACHABLE:
        return {**checks, "database": UNREACHABLE, "proxy": UNREACHABLE}
    database, proxy = await asyncio.gather(
        _verdict("hub database", hub.call("GET", "user")),
        _verdict("proxy", hub.call("GET", "proxy", params={"limit": "1"})),
    )
    return {**checks, "database": database, "proxy": proxy}


def process_alive(pid: int) -> bool:
    """Whether process `pid` runs here (not ended, not a zombie waiting to be reaped)."""
    if pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


async def check_service(model: dict[str, Any], timeout: float) -> str:
    """A service with a URL: its `api/health` (or, without one, its prefix answering < 500).

    A managed service without a URL (the idle culler): its process, by the pid the hub gives.
    """
    name = model["name"]
    if model.get("url"):
        base = url_path_join(model["url"], model.get("prefix") or f"/services/{name}/")
        async with ProbeClient(base, timeout=timeout) as client:
            try:
                await client.request("GET", "api/health")
                return OK
            except Unreachable as e:
                log.warning("health: service %s unreachable: %s", name, e)
                return UNREACHABLE
            except ApiError as e:
                if e.status != 404:
                    log.warning("health: service %s failing: %s", name, e)
                    return FAILING
            # no health route: the service answering at all is what can be known
            return await _verdict(f"service {name}", client.request("GET", ""))
    if not process_alive(int(model.get("pid") or 0)):
        log.warning("health: service %s has no running process", name)
        return FAILING
    return OK


async def check_services(hub: ProbeClient, me: str, timeout: float) -> dict[str, str]:
    """One check per service that is a process or has a URL (token-only services have none)."""
    try:
        services = await hub.call("GET", "services")
    except Unreachable as e:
        log.warning("health: cannot list services: %s", e)
        return {"services": UNREACHABLE}
    except ApiError as e:
        log.warning("health: cannot list services: %s", e)
        return {"services": FAILING}
    checks: dict[str, str] = {}
    pending: dict[str, Any] = {}
    for name, model in sorted(services.items()):
        if name == me:
            checks[f"service:{name}"] = OK  # it is answering this very request
        elif model.get("url") or model.get("command"):
            pending[f"service:{name}"] = check_service(model, timeout)
    results = await asyncio.gather(*pending.values())
    checks.update(zip(pending, results, strict=True))
    return dict(sorted(checks.items()))


async def platform_health(hub: ProbeClient, me: str, timeout: float) -> dict[str, str]:
    """Every check: hub, database, proxy and each service, run at the same time."""
    parts, services = await asyncio.gather(check_hub(hub), check_services(hub, me, timeout))
    return {**parts, **services}
