"""One client for the REST APIs of the hub and of the platform's services (sync and async).

The CLI, the JupyterLab bridge, the scheduler's workers and the tests all call the hub and the
services through `Client` (blocking) or `AsyncClient`: the same error parsing (the JSON
`{status, message}` every service answers with becomes an `ApiError` carrying both), the same
token header and the same cursor paging. Where each API lives is said here once.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx

from dsml.datadir import DataDir
from dsml.exceptions import HubError

HUB_API = "/hub/api/"
"""Path of the hub's REST API below the platform's URL."""

SCHEDULER = "scheduler"
"""The scheduler service's name; it is served at /services/scheduler/."""

PORTAL = "portal"
"""The portal service's name; it is served at /services/portal/."""

APPS = "apps"
"""The apps service's name; it is served at /services/apps/."""

APP_SERVER_PREFIX = "app-"
"""An app is its owner's named server `app-<slug>`: the hub's spawner, the apps service and the
portal's usage figures (which do not count app servers as people's servers) all go by it."""

RUN_FINAL_STATES = ("succeeded", "failed", "timed_out", "cancelled", "lost", "skipped")
"""The states a scheduled run ends in, as the scheduler's API names them."""


def service_api(name: str) -> str:
    """Path of a platform service's REST API below the platform's URL."""
    return f"/services/{name}/api/"


HEALTH_PATH = service_api(PORTAL) + "health"
"""Path of the platform's health check below its URL: 200 while every part is up, else 503."""


class ApiError(HubError):
    """An API answered with an error status, or could not be reached (status 502 then)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def error_message(response: httpx.Response) -> str:
    """The JSON `message` of an error answer, or the start of whatever else came back."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return response.text.strip()[:300] or response.reason_phrase


def runtime_file(datadir: DataDir) -> Path:
    """File `dsml up` writes with the running platform's URL."""
    return datadir.hub / "runtime.json"


def find_hub_url(datadir: DataDir | None, explicit: str | None = None) -> str:
    """The platform URL: the flag, DSML_HUB_URL, what `dsml up` recorded, or :8000."""
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


class _Calls:
    """What both clients share: base URL, headers, and turning answers into data or errors."""

    hint_403 = ""
    """Appended to a 403 'authentication required' message (what to do about the token)."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        timeout: float = 60.0,
    ):
        self.base_url = base_url.rstrip("/") + "/"
        self.headers = dict(headers or {})
        if token:
            self.headers["Authorization"] = f"token {token}"
        self.timeout = timeout

    def error(self, status: int, message: str, call: str = "") -> Exception:
        """The exception raised for an error answer (subclasses may raise their own kind).

        `call` is "METHOD path"; the CLI shows it with the status, as `POST jobs: HTTP 400: ...`.
        """
        return ApiError(status, f"{call}: HTTP {status}: {message}" if call else message)

    def _unreachable(self, e: httpx.HTTPError) -> Exception:
        return self.error(502, f"cannot reach {self.base_url}: {e}")

    def _checked(self, method: str, path: str, response: httpx.Response, ok: tuple[int, ...]):  # type: ignore[no-untyped-def]
        if response.status_code in ok:
            return response
        if response.status_code >= 400:
            message = error_message(response)
            if response.status_code == 403 and "authentication required" in message:
                message += self.hint_403
            raise self.error(response.status_code, message, f"{method} {path}")
        return response

    @staticmethod
    def decode(response: httpx.Response) -> Any:
        """The JSON body of an answer (None when empty)."""
        return response.json() if response.content else None

    @staticmethod
    def _page_query(params: dict[str, str] | None, cursor: str | None, limit: int) -> dict:
        query = {**(params or {}), "limit": str(limit)}
        if cursor:
            query["cursor"] = cursor
        return query


class Client(_Calls):
    """Blocking calls to one API (the CLI and the workers wait anyway)."""

    def __init__(self, base_url: str, token: str | None = None, **kwargs: Any):
        super().__init__(base_url, token, **kwargs)
        self._http = httpx.Client(
            base_url=self.base_url, headers=self.headers, timeout=self.timeout
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
        ok: tuple[int, ...] = (),
    ) -> httpx.Response:
        """Call the API and return the answer; raise `error(...)` on an error status."""
        try:
            response = self._http.request(
                method,
                path.lstrip("/"),
                json=body,
                params=params,
                headers=headers,
                content=content,
            )
        except httpx.HTTPError as e:
            raise self._unreachable(e) from None
        return self._checked(method, path, response, ok)

    def call(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        """Call the API and return its JSON answer (None when empty)."""
        return self.decode(self.request(method, path, body, **kwargs))

    def pages(
        self, path: str, key: str, params: dict[str, str] | None = None, limit: int = 100
    ) -> Iterator[dict[str, Any]]:
        """Every item of a cursor-paged listing (`{key: [...], "next_cursor": ...}`)."""
        cursor = None
        while True:
            page = self.call("GET", path, params=self._page_query(params, cursor, limit))
            yield from page[key]
            cursor = page.get("next_cursor")
            if not cursor:
                return


class AsyncClient(_Calls):
    """Async calls to one API (services, the JupyterLab bridge, `dsml up`)."""

    def __init__(self, base_url: str, token: str | None = None, **kwargs: Any):
        super().__init__(base_url, token, **kwargs)
        self._http: httpx.AsyncClient | None = None

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection pool."""
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(
                base_url=self.base_url, headers=self.headers, timeout=self.timeout
            )
        return self._http

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
        ok: tuple[int, ...] = (),
    ) -> httpx.Response:
        """Call the API and return the answer; raise `error(...)` on an error status."""
        try:
            response = await self._client().request(
                method,
                path.lstrip("/"),
                json=body,
                params=params,
                headers=headers,
                content=content,
            )
        except httpx.HTTPError as e:
            raise self._unreachable(e) from None
        return self._checked(method, path, response, ok)

    async def call(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        """Call the API and return its JSON answer (None when empty)."""
        return self.decode(await self.request(method, path, body, **kwargs))

    async def pages(
        self, path: str, key: str, params: dict[str, str] | None = None, limit: int = 100
    ) -> AsyncIterator[dict[str, Any]]:
        """Every item of a cursor-paged listing (`{key: [...], "next_cursor": ...}`)."""
        cursor = None
        while True:
            page = await self.call("GET", path, params=self._page_query(params, cursor, limit))
            for item in page[key]:
                yield item
            cursor = page.get("next_cursor")
            if not cursor:
                return


class HubClient(AsyncClient):
    """The hub's REST API (`<platform>/hub/api/`) with a token."""

    def __init__(self, url: str, token: str, timeout: float = 30.0):
        self.url = url.rstrip("/")
        super().__init__(self.url + HUB_API, token, timeout=timeout)

    async def request(  # type: ignore[override]
        self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (), **kwargs: Any
    ) -> Any:
        """Call the API; return the decoded JSON body, or {"status": code} for codes in `ok`."""
        response = await super().request(method, path, body, ok=ok, **kwargs)
        if response.status_code in ok:
            return {"status": response.status_code}
        return self.decode(response)


def scheduler_client(hub_url: str, token: str, *, hint_403: str = "") -> Client:
    """A blocking client of the scheduler service's API."""
    client = Client(hub_url.rstrip("/") + service_api(SCHEDULER), token)
    client.hint_403 = hint_403
    return client
