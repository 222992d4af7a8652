"""kill -9 the scheduler service while a run is running and a cron tick is due.

After the hub restarts it, no run is stuck or duplicated, the running one finishes (its
worker kept going and reports to the new process), and the schedule goes on.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import time
from pathlib import Path

import httpx
from test_scheduler_api import NOTEBOOKS, PAPERMILL, Api

from conftest import Platform


def scheduler_pid(platform: Platform) -> int | None:
    """The scheduler service process of this platform (found by its data dir)."""
    wanted = str(platform.datadir.root / "scheduler").encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            if b"dsml.scheduler\x00" not in cmdline + b"\x00" or b"worker" in cmdline:
                continue
            if wanted in cmdline:
                return int(entry.name)
        except OSError:
            continue
    return None


def test_kill_9_during_a_run_and_a_due_tick(platform: Platform, tmp_path: Path) -> None:
    api = Api(platform, "scientist")
    marker = tmp_path / "pid"
    long_job = api.create_job(NOTEBOOKS / "writes_marker.ipynb", name="survives restart")
    long_run = api.start(long_job, {"marker": str(marker), "seconds": 25})
    # a second run, to be cancelled by the restarted service
    other_marker = tmp_path / "other-pid"
    other_job = api.create_job(NOTEBOOKS / "writes_marker.ipynb", name="cancelled after restart")
    other_run = api.start(other_job, {"marker": str(other_marker), "seconds": 300})
    deadline = time.monotonic() + 60
    while not (marker.exists() and other_marker.exists()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert marker.exists() and other_marker.exists(), "the runs never started"
    other_kernel = int(other_marker.read_text())

    # a cron job whose next tick falls while the service is down
    now = dt.datetime.now(dt.UTC)
    if now.second > 45:
        time.sleep(62 - now.second)
    cron_job = api.create_job(
        PAPERMILL / "simple_execute.ipynb", name="every minute", schedule="* * * * *"
    )
    pid = scheduler_pid(platform)
    assert pid, "scheduler service not found"
    os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()

    # the hub notices and starts the service again
    health = platform.url + "/services/scheduler/api/health"
    while True:
        new_pid = scheduler_pid(platform)
        if new_pid and new_pid != pid:
            try:
                if httpx.get(health, timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
        assert time.monotonic() - killed_at < 90, "the scheduler was not restarted"
        time.sleep(0.5)

    # a run started by the previous process can be cancelled: worker and kernel are stopped
    r = api.client.post(f"runs/{other_run['id']}/cancel")
    assert r.status_code == 200 and r.json()["state"] == "cancelled", r.text
    time.sleep(0.5)
    stat = Path(f"/proc/{other_kernel}/stat")
    assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"

    finished = api.wait(long_run, timeout=120)
    assert finished["state"] == "succeeded", finished
    states = [e["state"] for e in finished["events"]]
    assert states == ["queued", "starting", "running", "succeeded"]

    # the cron job: the tick due during the outage ran once, and the next one follows
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        runs = api.client.get(f"jobs/{cron_job['id']}/runs").json()["runs"]
        done = [r for r in runs if r["state"] == "succeeded"]
        if len(done) >= 2:
            break
        time.sleep(1)
    ticks = [r["scheduled_for"] for r in runs if r["attempt"] == 1]
    assert len(ticks) == len(set(ticks)), ticks
    assert len(done) >= 2, runs
    assert not [r for r in runs if r["state"] in ("starting", "running", "lost")]
    api.client.patch(f"jobs/{cron_job['id']}", json={"paused": True})
