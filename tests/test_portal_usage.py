"""Usage figures on a platform of their own: exact counts, a portal restart, a stopped scheduler.

The platform is this module's own (`dsml up --demo` in a temporary folder), so every user, job,
run, app and view it holds is one these tests made and the counts can be exact. The order of the
tests matters: the first makes the figures, the next ones check they survive.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dsml.datadir import DataDir
from dsml.scheduler import models as scheduler_models
from dsml.scopes import USAGE_ADMIN

from conftest import CORPUS, Platform, hub_token, running_platform

NOTEBOOKS = Path(__file__).parent / "notebooks"
PAPERMILL = CORPUS / "papermill"
FINAL = scheduler_models.FINAL_STATES


@pytest.fixture(scope="module")
def own(env_datadir: DataDir, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """A platform for this module alone."""
    base = tmp_path_factory.mktemp("usage-platform")
    with running_platform(base, base / "data") as platform:
        yield platform


@pytest.fixture(scope="module")
def tokens(own: Platform) -> dict[str, str]:
    """Hub API tokens of the three users who sign in (the other two never do)."""
    return {name: hub_token(own, name) for name in ("scientist", "analyst", "admin")}


def client(platform: Platform, token: str, service: str) -> httpx.Client:
    """An API client of one service with a user's token."""
    return httpx.Client(
        base_url=f"{platform.url}/services/{service}/api/",
        headers={"Authorization": f"token {token}"},
        timeout=60,
    )


def service_pid(platform: Platform, module: str, folder: str) -> int | None:
    """The pid of a service of this platform: `python -m <module>` with its data folder."""
    wanted = str(platform.datadir.root / folder).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        args = cmdline.split(b"\x00")
        if module.encode() in args and b"worker" not in cmdline and wanted in cmdline:
            return int(entry.name)
    return None


def run_job(scheduler: httpx.Client, notebook: Path) -> tuple[dict, dict]:
    """Create a job of the notebook, run it once, wait for the run's final state."""
    r = scheduler.post(
        "jobs",
        json={
            "name": notebook.stem,
            "notebook": json.loads(notebook.read_text()),
            "notebook_name": notebook.name,
            "environment": "python-minimal",
            "retries": 0,
        },
    )
    assert r.status_code == 201, r.text
    job = r.json()
    r = scheduler.post(f"jobs/{job['id']}/runs", json={"parameters": {}})
    assert r.status_code == 201, r.text
    run = r.json()
    deadline = time.monotonic() + 180
    while run["state"] not in FINAL:
        assert time.monotonic() < deadline, f"run {run['id']} still {run['state']}"
        time.sleep(0.5)
        run = scheduler.get(f"runs/{run['id']}").json()
    return job, run


def start_server(platform: Platform, name: str, token: str) -> httpx.Client:
    """Start the user's JupyterLab server and wait until it is ready; a hub API client."""
    hub = httpx.Client(
        base_url=platform.url + "/hub/api/",
        headers={"Authorization": f"token {token}"},
        timeout=120,
    )
    r = hub.post(f"users/{name}/server")
    assert r.status_code in (201, 202), r.text
    deadline = time.monotonic() + 120
    while not (hub.get(f"users/{name}").json().get("servers") or {}).get("", {}).get("ready"):
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.5)
    return hub


def usage(platform: Platform, token: str, path: str = "usage", **params: str) -> dict:
    """GET a usage endpoint of the portal; it must answer 200."""
    with client(platform, token, "portal") as portal:
        r = portal.get(path, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def counts(figures: dict) -> dict:
    """The figures without the time they were made."""
    return {k: v for k, v in figures.items() if k != "generated_at"}


def test_usage_counts_exactly_what_happened(own: Platform, tokens: dict[str, str]) -> None:
    sci = client(own, tokens["scientist"], "scheduler")
    ana = client(own, tokens["analyst"], "scheduler")
    run_job(sci, PAPERMILL / "simple_execute.ipynb")
    _, failed = run_job(sci, PAPERMILL / "broken.ipynb")
    assert failed["state"] == "failed"
    r = ana.post(
        "jobs",
        json={
            "name": "never run",
            "notebook": json.loads((PAPERMILL / "simple_execute.ipynb").read_text()),
            "environment": "python-minimal",
        },
    )
    assert r.status_code == 201, r.text

    apps = client(own, tokens["scientist"], "apps")
    r = apps.post(
        "apps",
        json={
            "slug": "impact",
            "title": "Impact",
            "notebook": json.loads((NOTEBOOKS / "widget_slider.ipynb").read_text()),
        },
    )
    assert r.status_code == 201, r.text
    views = [
        {"viewer": "stakeholder", "version": 1, "render_seconds": 0.2},
        {"viewer": "stakeholder", "version": 1, "render_seconds": 0.3},
        {"viewer": "analyst", "version": 1, "render_seconds": 0.4},
    ]
    assert apps.post("apps/impact/events", json={"views": views}).status_code == 204

    hub = start_server(own, "scientist", tokens["scientist"])
    try:
        # the portal records a start when it sees the server running
        live = usage(own, tokens["analyst"])
    finally:
        hub.delete("users/scientist/server")
    assert live["servers_started"] == {"total": 1, "last_30_days": 1}

    figures = usage(own, tokens["analyst"])
    assert figures["missing"] == []
    assert figures["users"] == {
        "total": 5,
        "active_monthly": 3,
        "active_weekly": 3,
        "new_monthly": 3,
        "new_weekly": 3,
    }
    assert figures["servers_started"] == {"total": 1, "last_30_days": 1}
    assert figures["jobs"] == {
        "defined": 3,
        "runs": {state: {"succeeded": 1, "failed": 1}.get(state, 0) for state in FINAL},
    }
    assert figures["apps"] == {"published": 1, "views": 3, "unique_viewers": 2}
    assert figures["environments"] == {"datascience": 1, "python-minimal": 3}
    assert figures["median_seconds_to_first_job"] >= 0
    assert figures["median_seconds_to_first_app"] >= 0

    # the per-user table is for admins
    with client(own, tokens["analyst"], "portal") as portal:
        r = portal.get("usage/users")
    assert r.status_code == 403 and USAGE_ADMIN in r.json()["message"]
    table = usage(own, tokens["admin"], "usage/users")
    rows = {row["user"]: row for row in table["users"]}
    assert set(rows) == {"admin", "analyst", "scientist", "stakeholder", "newcomer"}
    sci_row = rows["scientist"]
    assert (sci_row["jobs"], sci_row["runs"], sci_row["apps"], sci_row["servers_started"]) == (
        2,
        2,
        1,
        1,
    )
    assert sci_row["first_login"] and sci_row["first_job"] and sci_row["first_app"]
    assert (rows["analyst"]["jobs"], rows["analyst"]["runs"], rows["analyst"]["apps"]) == (1, 0, 0)
    assert rows["newcomer"]["first_login"] is None and rows["newcomer"]["jobs"] == 0

    # Prometheus gauges of the same totals
    r = httpx.get(
        own.url + "/services/portal/metrics",
        headers={"Authorization": f"token {tokens['analyst']}"},
        timeout=60,
    )
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")
    assert "dsml_portal_jobs_defined 3.0" in r.text
    assert 'dsml_portal_job_runs{state="failed"} 1.0' in r.text
    assert "dsml_portal_app_views 3.0" in r.text
    assert 'dsml_portal_users_active{window="weekly"} 3.0' in r.text
    assert httpx.get(own.url + "/services/portal/metrics", timeout=30).status_code == 403


def test_figures_and_history_survive_a_portal_restart(
    own: Platform, tokens: dict[str, str]
) -> None:
    before = usage(own, tokens["analyst"])
    pid = service_pid(own, "dsml.portal", "portal")
    assert pid, "portal service not found"
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 90
    while True:
        new = service_pid(own, "dsml.portal", "portal")
        if new and new != pid:
            with client(own, tokens["analyst"], "portal") as portal:
                try:
                    if portal.get("usage").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
        assert time.monotonic() < deadline, "the hub did not restart the portal"
        time.sleep(0.5)
    after = usage(own, tokens["analyst"])
    # the server started before the restart was recorded by the portal, not kept by the hub
    assert counts(after) == counts(before)
    history = usage(own, tokens["analyst"], "usage/history", days="7")["days"]
    assert len(history) == 1
    assert counts(history[-1]["figures"]) == counts(after)
    with client(own, tokens["analyst"], "portal") as portal:
        r = portal.get("usage/history", params={"days": "0"})
    assert r.status_code == 400 and "days" in r.json()["message"]


def test_a_stopped_scheduler_is_named_missing(own: Platform, tokens: dict[str, str]) -> None:
    before = usage(own, tokens["analyst"])
    pid = service_pid(own, "dsml.scheduler", "scheduler")
    assert pid, "scheduler service not found"
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        figures = usage(own, tokens["analyst"])
        assert time.monotonic() - started < 30
        table = usage(own, tokens["admin"], "usage/users")
        history = usage(own, tokens["analyst"], "usage/history", days="1")["days"]
    finally:
        os.kill(pid, signal.SIGCONT)
    assert figures["missing"] == ["scheduler"]
    assert figures["jobs"] is None
    # what the other sources and the portal's own records give is all there
    assert figures["apps"] == before["apps"]
    assert figures["users"] == before["users"]
    assert figures["servers_started"] == before["servers_started"]
    assert figures["median_seconds_to_first_job"] == before["median_seconds_to_first_job"]
    assert table["missing"] == ["scheduler"]
    assert {row["jobs"] for row in table["users"]} == {None}
    # today's snapshot keeps the jobs it had
    assert history[-1]["figures"]["jobs"] == before["jobs"]
    # and once the scheduler answers again, so do its figures
    assert usage(own, tokens["analyst"])["jobs"] == before["jobs"]
