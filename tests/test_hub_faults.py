"""kill -9 of the proxy, then of the hub, mid-run and at a due cron tick, on a platform of its own.

One platform (not the session's: its hub dies here) holds a long run, an app with a viewer and
an every-minute cron job. The proxy is killed first: the hub starts a new one and gives it every
route again. Then the hub is killed a few seconds before a minute's tick: `dsml up` kills the
services it left, starts a new hub, which adopts the app server and replaces the proxy. After
each, the test waits (generously) until the platform answers again and prints how long that
took; then every run has exactly one final state, the tick due during the outage ran once and
the schedule went on, the app opens again on the same server, and the portal's figures say what
happened and nothing else.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from test_scheduler_api import FINAL, NOTEBOOKS, PAPERMILL, Api

from dsml.cli.up import RestartBudget, exit_reason

from conftest import DSML, DataDir, Platform, hub_token, running_platform

SLUG = "faults"
APP_OWNER = "scientist"
VIEWER = "stakeholder"
KILL_AT_SECOND = 56
"""The hub dies this many seconds into a minute: the next tick falls while it is down."""


def wait_for(check: Callable[[], object], timeout: float, what: str) -> float:
    """Poll `check` until it is true; return the seconds that took; fail after `timeout`."""
    began = time.monotonic()
    while not check():
        if time.monotonic() - began > timeout:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.2)
    return time.monotonic() - began


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def proxy_pid(platform: Platform) -> int | None:
    """The proxy the hub started, by its pid file."""
    try:
        return int((platform.datadir.hub / "proxy.pid").read_text())
    except (OSError, ValueError):
        return None


def recorded_pid(platform: Platform, name: str) -> int | None:
    """The pid of `name` (hub, proxy) in the process record `dsml up` keeps."""
    record = json.loads((platform.datadir.hub / "processes.json").read_text())
    entry = record["processes"].get(name)
    return int(entry["pid"]) if entry else None


def hub_pid(platform: Platform) -> int:
    """The hub `dsml up` runs now, from its process record."""
    pid = recorded_pid(platform, "hub")
    assert pid, "no hub in the process record"
    return pid


def answers(client: httpx.Client, path: str) -> bool:
    """True when GET `path` answers 200."""
    try:
        return client.get(path).status_code == 200
    except httpx.HTTPError:
        return False


def serves(platform: Platform, viewer: httpx.Client, admin: httpx.Client) -> bool:
    """The platform answers: health (every part up), the app for its viewer, a service API."""
    return (
        answers(admin, "/services/portal/api/health")
        and answers(viewer, f"/user/{APP_OWNER}/app-{SLUG}/")
        and answers(admin, "/services/portal/api/usage")
    )


def app_started(admin: httpx.Client) -> str:
    """When the hub says the app's server started: the same after adoption, not after a start."""
    r = admin.get(f"/hub/api/users/{APP_OWNER}")
    assert r.status_code == 200, r.text[:300]
    server = r.json()["servers"][f"app-{SLUG}"]
    assert server["ready"], server
    return server["started"]


def usage(admin: httpx.Client) -> dict[str, Any]:
    """The portal's usage figures, as an admin reads them."""
    r = admin.get("/services/portal/api/usage")
    assert r.status_code == 200, r.text[:300]
    return r.json()


def client(platform: Platform, token: str) -> httpx.Client:
    """A client of the platform's public URL with a user's token."""
    return httpx.Client(
        base_url=platform.url, headers={"Authorization": f"token {token}"}, timeout=30
    )


def publish_app(owner: httpx.Client) -> None:
    """Publish the slider notebook, shared with the viewer, and start its server."""
    r = owner.post(
        "/services/apps/api/apps",
        json={
            "slug": SLUG,
            "title": "Faults",
            "notebook": json.loads((NOTEBOOKS / "widget_slider.ipynb").read_text()),
            "share": {"users": [VIEWER]},
        },
    )
    assert r.status_code == 201, r.text[:300]
    r = owner.post(f"/services/apps/api/apps/{SLUG}/start")
    assert r.status_code == 200, r.text[:300]
    wait_for(
        lambda: owner.get(f"/services/apps/api/apps/{SLUG}/status").json().get("ready"),
        120,
        "the app's server is ready",
    )


def next_kill_time(after: float) -> dt.datetime:
    """The first moment KILL_AT_SECOND into a minute at least `after` seconds from now."""
    now = dt.datetime.now(dt.UTC)
    at = now.replace(second=KILL_AT_SECOND, microsecond=0)
    while (at - now).total_seconds() < after:
        at += dt.timedelta(minutes=1)
    return at


def minute(text: str) -> dt.datetime:
    """A run's scheduled_for as an aware datetime (the API gives UTC, maybe without a zone)."""
    t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def test_restart_budget_and_exit_reasons() -> None:
    budget = RestartBudget(limit=2, window=60)
    assert [budget.allow() for _ in range(3)] == [True, True, False]
    assert budget.used == 2
    assert RestartBudget(limit=0, window=60).allow() is False
    assert exit_reason(-signal.SIGKILL) == "was killed by SIGKILL"
    assert exit_reason(3) == "exited with code 3"


def test_kill_9_of_the_proxy_and_of_the_hub(env_datadir: DataDir, tmp_path: Path) -> None:
    with running_platform(tmp_path / "platform", tmp_path / "data") as platform:
        check_faults(platform, tmp_path)


def check_faults(platform: Platform, tmp_path: Path) -> None:
    """The whole scenario on a running platform (see the module's docstring)."""
    api = Api(platform, APP_OWNER)
    owner = client(platform, api.token)
    viewer = client(platform, hub_token(platform, VIEWER))
    admin = client(platform, hub_token(platform, "admin"))

    cron = api.create_job(
        PAPERMILL / "simple_execute.ipynb", name="every minute", schedule="* * * * *"
    )
    publish_app(owner)
    assert answers(viewer, f"/user/{APP_OWNER}/app-{SLUG}/"), "the viewer cannot open the app"
    started = app_started(admin)

    # a run that is running when the proxy dies and still running when the hub dies
    kill_at = next_kill_time(after=35)
    marker = tmp_path / "kernel-pid"
    seconds = (kill_at - dt.datetime.now(dt.UTC)).total_seconds() + 20
    long_job = api.create_job(NOTEBOOKS / "writes_marker.ipynb", name="outlives the hub")
    long_run = api.start(long_job, {"marker": str(marker), "seconds": round(seconds)})
    wait_for(marker.exists, 90, "the long run started")
    kernel = int(marker.read_text())

    # kill -9 of the proxy: the hub starts another and gives it every route again
    dead_proxy = proxy_pid(platform)
    assert dead_proxy and alive(dead_proxy), "no proxy found"
    os.kill(dead_proxy, signal.SIGKILL)
    took = wait_for(
        lambda: (
            proxy_pid(platform) not in (None, dead_proxy)
            and alive(proxy_pid(platform) or 0)
            and serves(platform, viewer, admin)
        ),
        90,
        "a new proxy serves the hub, the app and the services",
    )
    print(f"\nkill -9 of the proxy: the platform served again after {took:.1f} s")
    # `dsml status` and `dsml down` find the new proxy in the process record
    wait_for(
        lambda: recorded_pid(platform, "proxy") == proxy_pid(platform),
        30,
        "dsml up records the new proxy",
    )
    assert alive(kernel), "the run's kernel died with the proxy"
    assert app_started(admin) == started

    before = usage(admin)
    assert before["missing"] == [], before

    # kill -9 of the hub a few seconds before a tick
    wait_for(lambda: dt.datetime.now(dt.UTC) >= kill_at, 90, "the moment to kill the hub")
    dead_hub = hub_pid(platform)
    assert api.client.get(f"runs/{long_run['id']}").json()["state"] == "running"
    os.kill(dead_hub, signal.SIGKILL)
    killed_at = dt.datetime.now(dt.UTC)
    took = wait_for(
        lambda: hub_pid(platform) != dead_hub and serves(platform, viewer, admin),
        180,
        "dsml up restarts the hub and the platform serves again",
    )
    print(f"kill -9 of the hub: the platform served again after {took:.1f} s")
    log = platform.log.read_text()
    assert "JupyterHub was killed by SIGKILL; restarting it (restart 1 of at most" in log, log[
        -3000:
    ]
    assert "dsml up: the platform is back after" in log, log[-3000:]
    assert not alive(dead_proxy) and alive(hub_pid(platform))
    record = json.loads((platform.datadir.hub / "processes.json").read_text())
    assert record["state"] == "up" and record["hub_restarts"] == 1, record
    shown = subprocess.run(
        [*DSML, "status", "--json", "--data-dir", str(platform.datadir.root)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    status = json.loads(shown.stdout)
    assert (status["state"], status["hub_restarts"]) == ("up", 1), shown.stdout
    assert recorded_pid(platform, "proxy") == proxy_pid(platform), record

    # the run in flight finished, once, and reported to the new scheduler
    finished = api.wait(long_run, timeout=180)
    assert finished["state"] == "succeeded", finished
    assert [e["state"] for e in finished["events"]] == [
        "queued",
        "starting",
        "running",
        "succeeded",
    ]

    # the app: the same server, adopted by the new hub, opens for its viewer
    assert app_started(admin) == started
    assert answers(viewer, f"/user/{APP_OWNER}/app-{SLUG}/")

    # the cron job: the tick due while the hub was down ran once, and the next one followed
    outage_tick = killed_at.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    next_tick = outage_tick + dt.timedelta(minutes=1)

    def ticks() -> list[dt.datetime]:
        runs = api.client.get(f"jobs/{cron['id']}/runs").json()["runs"]
        return sorted(minute(r["scheduled_for"]) for r in runs if r["attempt"] == 1)

    wait_for(lambda: next_tick in ticks(), 150, f"the tick of {next_tick:%H:%M} ran")
    assert api.client.patch(f"jobs/{cron['id']}", json={"paused": True}).status_code == 200
    runs = api.client.get(f"jobs/{cron['id']}/runs").json()["runs"]
    for run in runs:
        if run["state"] not in FINAL:
            api.wait(run, timeout=120)
    seen = ticks()
    assert len(seen) == len(set(seen)), f"a tick ran twice: {seen}"
    assert outage_tick in seen, f"the tick due during the outage is missing: {seen}"
    every_minute = [seen[0] + dt.timedelta(minutes=i) for i in range(len(seen))]
    assert seen == every_minute, f"a tick is missing: {seen}"

    # every run has exactly one final state, and it is its state
    final = {}
    for job in (cron, long_job):
        for run in api.client.get(f"jobs/{job['id']}/runs").json()["runs"]:
            run = api.client.get(f"runs/{run['id']}").json()
            ends = [e["state"] for e in run["events"] if e["state"] in FINAL]
            assert ends == [run["state"]], run
            final[run["id"]] = run["state"]
    assert set(final.values()) == {"succeeded"}, final

    # the portal's figures: what was there before, and the runs since, nothing lost or doubled
    after = usage(admin)
    assert after["missing"] == [], after
    for key in ("users", "servers_started", "environments"):
        assert after[key] == before[key], (key, before[key], after[key])
    assert after["jobs"]["defined"] == before["jobs"]["defined"] == 2
    assert after["jobs"]["runs"] == {
        state: sum(1 for s in final.values() if s == state) for state in after["jobs"]["runs"]
    }, (after["jobs"], final)
    assert after["apps"]["published"] == before["apps"]["published"] == 1
    assert after["apps"]["views"] >= before["apps"]["views"]
