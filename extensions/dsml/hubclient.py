"""One async client for the hub's REST API, shared by every CLI command."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx

from dsml.datadir import DataDir
from dsml.exceptions import HubError


def runtime_file(datadir: DataDir) -> Path:
    """File `dsml up` writes with the running hub's URL."""
    return datadir.hub / "runtime.json"


def find_hub_url(datadir: DataDir | None, explicit: str | None = None) -> str:
    """The hub URL: the flag, DSML_HUB_URL, what `dsml up` recorded, or http://127.0.0.1:8000."""
    if explicit:
        return explicit.rstrip("/")
    if os.environ.get("DSML_HUB_URL"):
        return os.environ["DSML_HUB_URL"].rstrip("/")
    if datadir is not None:
        try:
            return json.loads(runtime_file(datadir).read_text())["url"].rstrip("/")
        except (OSError, ValueError, KeyError):
            pass
    return "http://127.0.0.1:8000"


class HubClient:
    """Async calls to `<hub url>/hub/api/...` with a token; errors become HubError."""

    def __init__(self, url: str, token: str, timeout: float = 30.0):
        self.url = url.rstrip("/")
        self._client = httpx.AsyncClient(
            base_url=self.url + "/hub/api/",
            headers={"Authorization": f"token {token}"},
            timeout=timeout,
        )

    async def __aenter__(self) -> HubClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()

    async def request(
        self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = ()
    ) -> Any:
        """Call the API; return the decoded JSON body (None when empty).

        Status codes in `ok` are returned as {"status": code} instead of raising.
        """
        try:
            response = await self._client.request(
                method, path.lstrip("/"), json=body if body is not None else None
            )
        except httpx.HTTPError as e:
            raise HubError(f"cannot reach the hub at {self.url}: {e}") from None
        if response.status_code in ok:
            return {"status": response.status_code}
        if response.status_code >= 400:
            try:
                message = response.json().get("message") or response.text
            except ValueError:
                message = response.text.strip()[:200]
            raise HubError(f"{method} {path}: HTTP {response.status_code}: {message}")
        if not response.content:
            return None
        return response.json()
