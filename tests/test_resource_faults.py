"""Resource faults: a full outputs folder, a notebook that eats memory, a locked database.

One platform of its own for the three (its scheduler's outputs folder is a small tmpfs made
here, its runs' kernels get a small memory limit and its SQLite database a short busy
timeout, all through the settings file and the scheduler's config file, as an admin would).
Each fault must end the run it hits with a clear one-line error, corrupt nothing (earlier
outputs intact, `PRAGMA integrity_check` ok) and leave the service serving. The store's own
conversion of a busy or unreachable database into a 503 is checked without a platform too.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from test_scheduler_api import Api

from dsml.service.exceptions import Unavailable
from dsml.service.store import SQLStore

from conftest import Platform, free_port, run_async, running_platform

MEMORY_LIMIT = 384 * 1024**2
"""The runs' kernel memory limit on this platform (job_memory_limit_bytes)."""

OUTPUTS_SIZE = 4 * 1024**2
"""Size of the tmpfs that holds this platform's run outputs."""

BUSY_SECONDS = 2
"""The scheduler database's busy timeout on this platform (`?timeout=` in its URL)."""


def notebook(folder: Path, name: str, *sources: str, parameters: str = "") -> Path:
    """Write a notebook of code cells (the first tagged `parameters` when given)."""
    cells = []
    if parameters:
        cells.append(
            {
                "cell_type": "code",
                "metadata": {"tags": ["parameters"]},
                "source": parameters,
                "outputs": [],
                "execution_count": None,
            }
        )
    for source in sources:
        cells.append(
            {
                "cell_type": "code",
                "metadata": {},
                "source": source,
                "outputs": [],
                "execution_count": None,
            }
        )
    nb = {
        "cells": cells,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path = folder / f"{name}.ipynb"
    path.write_text(json.dumps(nb))
    return path


def integrity(db: Path) -> str:
    """`PRAGMA integrity_check` of a SQLite database (a reader beside the live service)."""
    with sqlite3.connect(db, timeout=30) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A platform whose outputs folder is a small tmpfs (as root), with small limits."""
    base = tmp_path_factory.mktemp("resource-faults")
    data = base / "data"
    outputs = base / "outputs"
    outputs.mkdir()
    mounted = False
    if os.geteuid() == 0:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={OUTPUTS_SIZE},mode=0700", "tmpfs", outputs],
            capture_output=True,
            text=True,
        )
        mounted = done.returncode == 0
        reason = done.stderr.strip()
    else:
        reason = "making a tmpfs needs root"
    db = data / "scheduler" / "scheduler.sqlite"
    config = base / "scheduler-config.json"
    config.write_text(
        json.dumps(
            {
                "Outputs": {"root": str(outputs)},
                "SchedulerApp": {"db_url": f"sqlite:///{db}?timeout={BUSY_SECONDS}"},
            }
        )
    )
    settings = {
        "scheduler": {
            "capacity": 2,
            "warm_workers": 1,
            "max_output_bytes": 5_000_000,
            "job_memory_limit_bytes": MEMORY_LIMIT,
            "config_file": str(config),
        }
    }
    try:
        with running_platform(base, data, port=free_port(), settings=settings) as platform:
            yield {
                "platform": platform,
                "api": Api(platform, "scientist"),
                "outputs": outputs,
                "mounted": mounted,
                "why_not_mounted": reason,
                "db": db,
                "folder": base,
            }
    finally:
        if mounted:
            subprocess.run(["umount", "-l", outputs], check=False)


def health(platform: Platform) -> int:
    """The scheduler's health status code."""
    return httpx.get(platform.url + "/services/scheduler/api/health", timeout=30).status_code


# the store alone: a busy or unreachable database is Unavailable (503), not a server error


class _Probe(SQLStore):
    """A store with one write, to meet the database's faults (no migrations needed)."""

    def write(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(text("CREATE TABLE IF NOT EXISTS probe (x INTEGER)"))
            conn.execute(text("INSERT INTO probe VALUES (1)"))

    def count(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM probe")).scalar_one()


def test_a_sqlite_database_locked_past_the_busy_timeout_is_unavailable(tmp_path: Path) -> None:
    db = tmp_path / "probe.sqlite"
    store = _Probe(f"sqlite:///{db}?timeout=0.5")
    try:
        run_async(store.run(store.write))
        other = sqlite3.connect(db, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        with pytest.raises(Unavailable) as caught:
            run_async(store.run(store.write))
        assert caught.value.status == 503
        assert str(caught.value) == (
            "the database is busy: another writer held its lock for over 0.5 s; try again"
        )
        assert run_async(store.run(store.count)) == 1  # WAL: reads go on
        other.execute("COMMIT")
        other.close()
        run_async(store.run(store.write))
        assert run_async(store.run(store.count)) == 2
    finally:
        store.close()
    assert integrity(db) == "ok"


def test_postgresql_unreachable_past_the_retries_is_unavailable() -> None:
    pytest.importorskip("psycopg")
    # nobody listens on this port: every connection is refused, as while a server is down
    store = _Probe(f"postgresql+psycopg://dsml@127.0.0.1:{free_port()}/dsml")
    store.retry_seconds = 1.0
    try:
        started = time.monotonic()
        with pytest.raises(Unavailable) as caught:
            run_async(store.run(store.count))
        print(f"gave up after {time.monotonic() - started:.1f} s")
        assert caught.value.status == 503
        assert str(caught.value) == "the database is unreachable (tried for 1 s); try again"
    finally:
        store.close()


# the platform


def test_a_notebook_over_the_memory_limit_fails_naming_it(faulty: dict[str, Any]) -> None:
    api: Api = faulty["api"]
    nb = notebook(
        faulty["folder"],
        "eats-memory",
        "import resource\nprint(resource.getrlimit(resource.RLIMIT_DATA))",
        # four times the limit: refused at once under it, granted (and filled) without it
        f"hog = bytearray({4 * MEMORY_LIMIT})",
        "print('not reached')",
    )
    run = api.wait(api.start(api.create_job(nb, name="eats memory")))
    assert run["state"] == "failed", run
    assert run["message"] == (
        "the notebook ran out of memory: a run's kernel may use 384 MiB (the "
        "scheduler.job_memory_limit_bytes setting); use less memory or ask an admin"
    ), run
    assert run["error"]["name"] == "MemoryError"
    assert run["error"]["cell_index"] == 1  # the hog, in the notebook as submitted
    assert health(faulty["platform"]) == 200
    # the same worker pool runs the next job as usual
    small = notebook(faulty["folder"], "small", "print('fine')")
    after = api.wait(api.start(api.create_job(small, name="after the hog")))
    assert after["state"] == "succeeded", after


def test_a_full_outputs_folder_fails_the_run_and_keeps_the_rest(faulty: dict[str, Any]) -> None:
    if not faulty["mounted"]:
        pytest.skip(f"no tmpfs for the outputs folder: {faulty['why_not_mounted']}")
    api: Api = faulty["api"]
    outputs: Path = faulty["outputs"]
    small = api.create_job(notebook(faulty["folder"], "small", "print('kept')"), name="small")
    earlier = api.wait(api.start(small))
    assert earlier["state"] == "succeeded", earlier
    kept = api.client.get(f"runs/{earlier['id']}/output.ipynb")
    assert kept.status_code == 200

    big_size = 2_500_000  # fits max_output_bytes; not beside its own log in 4 MiB
    big = api.create_job(
        notebook(faulty["folder"], "big", f"print('x' * {big_size})"), name="big output"
    )
    run = api.wait(api.start(big))
    print("free after the big run:", shutil.disk_usage(outputs).free, "bytes")
    assert run["state"] == "failed", run
    assert run["failure_kind"] == "infra"
    assert not run["has_output"]
    assert run["message"].startswith(
        f"the outputs folder is full: writing output.ipynb of run {run['id']} ("
    ), run["message"]
    assert "; delete old runs or give the outputs folder more room" in run["message"]
    assert "\n" not in run["message"]
    # nothing half written: no temporary file left, no output of the failed run
    leftovers = [p.name for p in (outputs / str(run["id"])).iterdir()]
    assert leftovers in ([], ["run.log"]), leftovers
    assert api.client.get(f"runs/{run['id']}/output.ipynb").status_code == 404

    # the service keeps serving, and what it kept before is whole
    platform: Platform = faulty["platform"]
    assert health(platform) == 200
    again = api.client.get(f"runs/{earlier['id']}/output.ipynb")
    assert again.status_code == 200 and again.content == kept.content
    assert api.client.get(f"runs/{earlier['id']}/output.html").status_code == 200
    assert integrity(faulty["db"]) == "ok"

    # room made (the failed run deleted, its log with it): runs keep their outputs again
    assert api.client.delete(f"runs/{run['id']}").status_code == 204
    deadline = time.monotonic() + 60
    while shutil.disk_usage(outputs).free < 2 * 1024**2 and time.monotonic() < deadline:
        time.sleep(0.5)  # the worker may hold the deleted log open for a moment
    later = api.wait(api.start(small))
    assert later["state"] == "succeeded", later
    assert later["has_output"]


def test_a_locked_database_is_a_503_and_loses_no_tick_nor_result(faulty: dict[str, Any]) -> None:
    """Another writer holds the scheduler's SQLite database across a run's result and a cron
    tick: writes answer 503, reads go on; once it lets go, the run ends once, the tick runs
    once, and the database is whole."""
    api: Api = faulty["api"]
    platform: Platform = faulty["platform"]
    sleeper = notebook(
        faulty["folder"],
        "sleeps",
        "import time\ntime.sleep(seconds)\nprint('done')",
        parameters="seconds = 1",
    )
    cron_nb = notebook(faulty["folder"], "ticks", "print('tick')")
    # the cron job's next tick must fall inside the lock: start shortly before a minute ends
    now = dt.datetime.now(dt.UTC)
    if now.second > 48:
        time.sleep(61 - now.second)
    while dt.datetime.now(dt.UTC).second < 48:
        time.sleep(0.5)
    cron_job = api.create_job(cron_nb, name="every minute", schedule="* * * * *")
    job = api.create_job(sleeper, name="ends while locked")
    run = api.start(job, {"seconds": 3})
    deadline = time.monotonic() + 60
    while api.client.get(f"runs/{run['id']}").json()["state"] != "running":
        assert time.monotonic() < deadline, "the run never started"
        time.sleep(0.2)

    lock = sqlite3.connect(faulty["db"], timeout=30, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    locked_at = dt.datetime.now(dt.UTC)
    tick = (locked_at + dt.timedelta(minutes=1)).replace(second=0, microsecond=0)
    try:
        # a write: a JSON 503 that says what happened and what to do
        r = api.client.post(f"jobs/{job['id']}/runs", json={"parameters": {"seconds": 1}})
        assert r.status_code == 503, r.text
        assert r.json() == {
            "status": 503,
            "message": f"the database is busy: another writer held its lock for over "
            f"{BUSY_SECONDS} s; try again",
        }
        # reads go on (WAL)
        r = api.client.get(f"jobs/{job['id']}")
        assert r.status_code == 200, r.text
        assert health(platform) == 200
        # hold the lock past the cron tick and past the run's end (its worker retries)
        while dt.datetime.now(dt.UTC) < tick + dt.timedelta(seconds=2 * BUSY_SECONDS + 2):
            time.sleep(0.5)
        during = api.client.get(f"runs/{run['id']}").json()
        assert during["state"] == "running", during
        log = (faulty["outputs"] / str(run["id"]) / "run.log").read_text()
        assert "the database is busy" in log, log[-2000:]
    finally:
        lock.execute("COMMIT")
        lock.close()

    # the run ends once, as it went
    ended = api.wait(run, timeout=120)
    assert ended["state"] == "succeeded", ended
    assert [e["state"] for e in ended["events"]] == ["queued", "starting", "running", "succeeded"]
    # the tick due under the lock ran, once
    stamp = tick.strftime("%Y-%m-%dT%H:%M:00")
    deadline = time.monotonic() + 120
    while True:
        runs = api.client.get(f"jobs/{cron_job['id']}/runs").json()["runs"]
        at_tick = [r for r in runs if (r["scheduled_for"] or "").startswith(stamp)]
        if at_tick and at_tick[0]["state"] in ("succeeded", "failed"):
            break
        assert time.monotonic() < deadline, runs
        time.sleep(0.5)
    api.client.patch(f"jobs/{cron_job['id']}", json={"paused": True})
    assert len(at_tick) == 1, runs
    assert at_tick[0]["state"] == "succeeded", at_tick
    ticks = [r["scheduled_for"] for r in runs if r["attempt"] == 1]
    assert len(ticks) == len(set(ticks)), ticks
    # writes work again, and nothing is corrupted
    again = api.wait(api.start(job, {"seconds": 0}))
    assert again["state"] == "succeeded", again
    assert integrity(faulty["db"]) == "ok"
