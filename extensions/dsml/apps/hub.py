"""What the apps service asks of the hub: app servers, shares, users and groups.

Every call goes through the hub's REST API with the service's own token; the `apps` role
grants exactly what these functions use (see `dsml.hub.config.update_roles`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from dsml.apps.exceptions import BadRequest
from dsml.client import ApiError, HubClient

STOPPED = "stopped"
STARTING = "starting"
RUNNING = "running"
STOPPING = "stopping"


def _server_path(owner: str, server: str) -> str:
    return f"users/{quote(owner, safe='')}/servers/{quote(server, safe='')}"


class HubApps:
    """App servers and their shares, through the hub's REST API."""

    def __init__(self, hub_api_url: str, token: str, base_url: str = "/"):
        url = hub_api_url.rstrip("/")
        root = url[: -len("/hub/api")] if url.endswith("/hub/api") else url
        self.client = HubClient(root, token)
        self.base_url = base_url.rstrip("/") + "/"

    async def close(self) -> None:
        """Close the connection pool."""
        await self.client.close()

    def server_url(self, owner: str, server: str) -> str:
        """Path of an app server below the platform's URL."""
        return f"{self.base_url}user/{quote(owner, safe='')}/{quote(server, safe='')}/"

    async def user_exists(self, name: str) -> bool:
        """Whether the hub has this user."""
        try:
            await self.client.request("GET", f"users/{quote(name, safe='')}")
        except ApiError as e:
            if e.status == 404:
                return False
            raise
        return True

    async def check_user(self, name: str) -> None:
        """BadRequest naming the user when the hub has no such user."""
        if not await self.user_exists(name):
            raise BadRequest(f"cannot share with user {name!r}: no such user")

    async def check_group(self, name: str) -> None:
        """BadRequest naming the group when the hub has no such group."""
        try:
            await self.client.request("GET", f"groups/{quote(name, safe='')}")
        except ApiError as e:
            if e.status == 404:
                raise BadRequest(f"cannot share with group {name!r}: no such group") from None
            raise

    async def server(self, owner: str, server: str) -> dict[str, Any]:
        """The server's state: running/starting/stopping/stopped, ready, url."""
        try:
            model = await self.client.request(
                "GET",
                f"users/{quote(owner, safe='')}",
                params={"include_stopped_servers": "1"},
            )
        except ApiError as e:
            if e.status == 404:
                return {"state": STOPPED, "ready": False, "exists": False, "owner_gone": True}
            raise
        found = (model.get("servers") or {}).get(server)
        if not found:
            return {"state": STOPPED, "ready": False, "exists": False}
        pending = found.get("pending")
        if found.get("ready"):
            state = RUNNING
        elif pending == "spawn":
            state = STARTING
        elif pending == "stop":
            state = STOPPING
        else:
            state = STOPPED
        return {"state": state, "ready": bool(found.get("ready")), "exists": True}

    async def start(self, owner: str, server: str, options: dict[str, Any] | None = None) -> str:
        """Start the server (already running or starting is fine); returns the new state.

        `options` become the spawner's user_options: the app's environment and its version,
        which pick the image on Kubernetes (the local spawner runs the app server whatever
        they say: the bundle pins the kernel).
        """
        response = await self.client.request(
            "POST", _server_path(owner, server), options or {}, ok=(201, 202, 400)
        )
        status = response.get("status")
        if status == 201:
            return RUNNING
        return STARTING if status == 202 else (await self.server(owner, server))["state"]

    async def stop(self, owner: str, server: str, remove: bool = False) -> None:
        """Stop the server (and forget it with `remove`); a missing server is fine."""
        await self.client.request(
            "DELETE",
            _server_path(owner, server),
            {"remove": True} if remove else None,
            ok=(202, 204, 400, 404),
        )

    async def ensure_server(self, owner: str, server: str) -> None:
        """The hub must know the named server before it can be shared: start it if unknown."""
        if not (await self.server(owner, server)).get("exists"):
            await self.start(owner, server)

    async def share(self, owner: str, server: str, kind: str, name: str) -> None:
        """Grant access to the server to a user or a group."""
        await self.client.request(
            "POST", f"shares/{quote(owner, safe='')}/{quote(server, safe='')}", {kind: name}
        )

    async def unshare(self, owner: str, server: str, kind: str, name: str) -> None:
        """Revoke a user's or group's access to the server (at once: no cache holds it)."""
        await self.client.request(
            "PATCH",
            f"shares/{quote(owner, safe='')}/{quote(server, safe='')}",
            {kind: name},
            ok=(404,),
        )

    async def touch(self, owner: str, server: str) -> None:
        """Report the server active now (the idle culler stops servers idle too long)."""
        from datetime import UTC, datetime

        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        await self.client.request(
            "POST",
            f"users/{quote(owner, safe='')}/activity",
            {"servers": {server: {"last_activity": now}}},
            ok=(204,),
        )

    async def groups_of(self, name: str) -> list[str] | None:
        """The user's groups (None when the hub has no such user any more)."""
        try:
            model = await self.client.request("GET", f"users/{quote(name, safe='')}")
        except ApiError as e:
            if e.status == 404:
                return None
            raise
        return list(model.get("groups") or [])
