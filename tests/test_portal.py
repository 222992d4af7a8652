"""The portal service against the running platform: health, package requests, its own database.

Health parts are also checked one by one against real processes on loopback: a dead port, a
service answering 500, a process that has ended.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import httpx
import pytest
import yaml

from dsml.client import HEALTH_PATH, PORTAL, service_api
from dsml.portal import health
from dsml.portal.apihandlers.requests import PACKAGE
from dsml.portal.app import PortalApp
from dsml.scopes import HEALTH_READ

from conftest import Platform, free_port, hub_token, run_async

SPEC = Path(__file__).parents[1] / "extensions" / "dsml" / "portal" / "openapi.yaml"


@pytest.fixture(scope="module")
def tokens(platform: Platform) -> dict[str, str]:
    """Hub API tokens of the demo admin, analyst and scientist (full scopes of their roles)."""
    return {name: hub_token(platform, name) for name in ("admin", "analyst", "scientist")}


def portal(platform: Platform, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"token {token}"} if token else {}
    return httpx.Client(base_url=platform.url + service_api(PORTAL), headers=headers, timeout=30)


def test_health_without_a_token_is_the_status_only(platform: Platform) -> None:
    r = httpx.get(platform.url + HEALTH_PATH, timeout=30)
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    assert r.headers["Cache-Control"] == "no-store"
    r = httpx.get(platform.url + HEALTH_PATH, params={"detail": "1"}, timeout=30)
    assert r.status_code == 403
    assert r.json() == {"status": 403, "message": r.json()["message"]}
    assert HEALTH_READ in r.json()["message"]


def test_health_detail_needs_the_scope(platform: Platform, tokens: dict[str, str]) -> None:
    with portal(platform, tokens["admin"]) as admin:
        body = admin.get("health").json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {
        "hub",
        "database",
        "proxy",
        "service:apps",
        "service:idle-culler",
        "service:portal",
        "service:scheduler",
    }
    assert set(body["checks"].values()) == {"ok"}
    with portal(platform, tokens["analyst"]) as analyst:
        assert analyst.get("health").json() == {"status": "ok"}
        r = analyst.get("health", params={"detail": "1"})
        assert r.status_code == 403 and r.json()["status"] == 403


class _Answers500(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(500)
        self.end_headers()
        self.wfile.write(b"Traceback: secret internals")

    def log_message(self, *args: object) -> None:
        pass


def test_health_parts_say_failing_or_unreachable_and_nothing_more() -> None:
    server = HTTPServer(("127.0.0.1", 0), _Answers500)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    dead = f"http://127.0.0.1:{free_port()}"

    async def checks() -> tuple[dict[str, str], list[str]]:
        async with health.ProbeClient(dead + "/hub/api/", "token", timeout=2) as hub:
            parts = await health.platform_health(hub, PORTAL, timeout=2)
        services = await asyncio.gather(
            health.check_service(
                {"name": "broken", "url": f"http://127.0.0.1:{server.server_port}"}, 2
            ),
            health.check_service({"name": "gone", "url": dead}, 2),
            health.check_service({"name": "culler", "command": ["x"], "pid": ended.pid}, 2),
            health.check_service({"name": "never", "command": ["x"], "pid": 0}, 2),
            health.check_service({"name": "alive", "command": ["x"], "pid": os.getpid()}, 2),
        )
        return parts, services

    try:
        parts, services = run_async(checks())
    finally:
        server.shutdown()
    assert parts == {
        "hub": "unreachable",
        "database": "unreachable",
        "proxy": "unreachable",
        "services": "unreachable",
    }
    assert services == ["failing", "unreachable", "failing", "failing", "ok"]


def test_package_requests_api(platform: Platform, tokens: dict[str, str]) -> None:
    with portal(platform, tokens["scientist"]) as scientist:
        r = scientist.post(
            "env-requests",
            json={"package": "statsmodels>=0.14", "environment": "datascience", "reason": "ARIMA"},
        )
        assert r.status_code == 201, r.text
        made = r.json()
        assert made["user"] == "scientist" and made["status"] == "open"
        again = scientist.post(
            "env-requests", json={"package": "statsmodels>=0.14", "environment": "datascience"}
        )
        assert again.status_code == 409 and f"request {made['id']}, open" in again.json()["message"]
        bad = scientist.post("env-requests", json={"package": "rm -rf /", "environment": "x"})
        assert bad.status_code == 400 and "'rm -rf /'" in bad.json()["message"]
        env = scientist.post("env-requests", json={"package": "polars", "environment": "nope"})
        assert env.status_code == 400 and "'nope' is not one of" in env.json()["message"]
        extra = scientist.post(
            "env-requests", json={"package": "polars", "environment": "datascience", "x": 1}
        )
        assert extra.status_code == 400 and "unknown field(s) x" in extra.json()["message"]
        assert scientist.post("env-requests", content=b"{").status_code == 400
        form = scientist.post("env-requests", data={"package": "polars"})
        assert form.status_code == 415 and "application/json" in form.json()["message"]
        big = scientist.post(
            "env-requests",
            content=json.dumps({"reason": "x" * 1_200_000}),
            headers={"Content-Type": "application/json"},
        )
        assert big.status_code == 413 and big.json()["status"] == 413
        assert scientist.patch(f"env-requests/{made['id']}", json={}).status_code == 403

    with portal(platform, tokens["admin"]) as admin:
        for n in range(3):
            admin.post("env-requests", json={"package": f"pkg{n}", "environment": "datascience"})
        first = admin.get("env-requests", params={"limit": "2"}).json()
        assert len(first["requests"]) == 2 and first["next_cursor"]
        second = admin.get("env-requests", params={"limit": "2", "cursor": first["next_cursor"]})
        ids = [r["id"] for r in first["requests"] + second.json()["requests"]]
        assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids)
        assert made["id"] in [r["id"] for r in admin.get("env-requests").json()["requests"]]
        mine = admin.get("env-requests", params={"mine": "1"}).json()["requests"]
        assert {r["user"] for r in mine} == {"admin"}
        assert admin.get("env-requests", params={"limit": "0"}).status_code == 400
        assert admin.get("env-requests", params={"cursor": str(2**70)}).status_code == 400
        assert admin.patch("env-requests/999999", json={"status": "done"}).status_code == 404
        wrong = admin.patch(f"env-requests/{made['id']}", json={"status": "maybe"})
        assert wrong.status_code == 400 and "open, accepted" in wrong.json()["message"]
        done = admin.patch(f"env-requests/{made['id']}", json={"status": "done", "answer": "ok"})
        assert done.status_code == 200 and done.json()["status"] == "done"

    with portal(platform) as anonymous:
        r = anonymous.get("env-requests")
        assert r.status_code == 403 and "authentication required" in r.json()["message"]
        r = anonymous.get("nothing-here")
        assert r.status_code == 404 and r.json()["status"] == 404
    with portal(platform, platform.admin_token) as service:
        r = service.post("env-requests", json={"package": "x", "environment": "datascience"})
        assert r.status_code == 403 and "only users" in r.json()["message"]
    with portal(platform, tokens["analyst"]) as analyst:
        seen = analyst.get("env-requests").json()["requests"]
        assert all(r["user"] == "analyst" for r in seen)
        catalog = analyst.get("environments").json()["environments"]
        assert {e["name"] for e in catalog} >= {"datascience", "python-minimal"}


def test_a_token_without_access_to_the_portal_is_refused(
    platform: Platform, tokens: dict[str, str]
) -> None:
    r = httpx.post(
        f"{platform.url}/hub/api/users/analyst/tokens",
        json={"note": "no portal", "scopes": ["read:users:name!user"]},
        headers={"Authorization": f"token {tokens['analyst']}"},
        timeout=30,
    )
    assert r.status_code == 201, r.text
    with portal(platform, r.json()["token"]) as client:
        refused = client.get("env-requests")
        assert refused.status_code == 403
        assert "may not use this service" in refused.json()["message"]
        assert "access:services!service=portal" in refused.json()["message"]
        # the overall health needs no token, so a useless one changes nothing
        assert client.get("health").json() == {"status": "ok"}


def test_the_portal_database_is_its_own(platform: Platform) -> None:
    hub_db = sqlite3.connect(f"file:{platform.datadir.hub / 'jupyterhub.sqlite'}?mode=ro", uri=True)
    with hub_db:
        hub_tables = {r[0] for r in hub_db.execute("SELECT name FROM sqlite_master")}
    hub_db.close()
    assert "dsml_env_requests" not in hub_tables and "env_requests" not in hub_tables
    folder = platform.datadir.root / "portal"
    assert folder.stat().st_mode & 0o777 == 0o700
    assert (folder / "cookie_secret").stat().st_mode & 0o777 == 0o600
    own = sqlite3.connect(f"file:{folder / 'portal.sqlite'}?mode=ro", uri=True)
    with own:
        tables = {r[0] for r in own.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    own.close()
    assert {"env_requests", "portal_alembic_version"} <= tables


def served_paths() -> set[str]:
    paths = set()
    for route in PortalApp().handlers():
        pattern = route[0]
        if not pattern.startswith("/api/"):
            continue  # pages are not API
        paths.add(re.sub(r"\(\\d\+\)", "{request_id}", pattern.removeprefix("/api")))
    return paths


def test_openapi_describes_exactly_the_served_routes() -> None:
    spec = yaml.safe_load(SPEC.read_text())
    assert spec["openapi"].startswith("3.")
    assert set(spec["paths"]) == served_paths()
    error = spec["components"]["responses"]["Error"]["content"]["application/json"]["schema"]
    assert error["required"] == ["status", "message"]
    package = spec["components"]["schemas"]["RequestCreate"]["properties"]["package"]
    assert package["pattern"] == PACKAGE.pattern
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if method == "parameters":
                continue
            for code in op["responses"]:
                if code in ("400", "403", "404", "409", "413", "415"):
                    assert op["responses"][code] == {"$ref": "#/components/responses/Error"}, (
                        path,
                        method,
                        code,
                    )
