"""Cron ticks, catch-up, overlap and retention through the real store and run manager.

The manager runs in-process on a temporary SQLite database with an executor subclass that
records launches instead of starting workers: cron decisions are exercised at chosen clock
times, and a second manager on the same database plays the restarted service.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dsml.scheduler import cron
from dsml.scheduler.exceptions import BadRequest
from dsml.scheduler.executors import Executor, Launch
from dsml.scheduler.runs import RunManager
from dsml.scheduler.store import Store

from conftest import run_async

NOTEBOOK = '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'


class RecordingExecutor(Executor):
    """Starts nothing: records launches and reports every worker alive (a paused cluster)."""

    name = "recording"

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.launched: list[int] = []

    async def start(self, run: dict[str, Any], launch: Launch) -> dict[str, Any]:
        self.launched.append(run["id"])
        return {"fake": run["id"]}

    async def is_alive(self, run: dict[str, Any]) -> bool:
        return True

    async def stop(self, run: dict[str, Any]) -> None:
        return None


def make(tmp_path: Path, capacity: int = 10) -> tuple[Store, RunManager, RecordingExecutor]:
    store = Store(f"sqlite:///{tmp_path / 'scheduler.sqlite'}")
    store.migrate()
    executor = RecordingExecutor(capacity=capacity)
    manager = RunManager(
        store, executor, tmp_path / "runs", "http://127.0.0.1:1/", grace_seconds=90
    )
    return store, manager, executor


def add_job(store: Store, schedule: str, now: datetime, **fields: Any) -> dict[str, Any]:
    base = {
        "name": fields.pop("name", "job"),
        "environment": "python-minimal",
        "schedule": schedule,
        "timezone": fields.pop("timezone", "UTC"),
        "parameters": {},
    }
    base.update(fields)
    first = cron.next_tick(schedule, base["timezone"], now)
    job, _ = store.create_job("ana", base, "nb.ipynb", NOTEBOOK, "0" * 64, {}, first)
    return job


def runs_of(store: Store, job: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted(store.list_runs(job_id=job["id"], limit=500), key=lambda r: r["id"])


T0 = datetime(2026, 11, 22, 8, 0, 30)


def test_each_tick_makes_one_run_even_with_two_managers(tmp_path: Path) -> None:
    store, first, _ = make(tmp_path)
    job = add_job(store, "* * * * *", T0, overlap="allow", max_concurrent_runs=5)
    _, second, _ = make(tmp_path)  # a restarted service on the same database

    async def go() -> None:
        for minute in range(1, 4):
            now = T0 + timedelta(minutes=minute)
            await first.fire_due(now)
            await second.fire_due(now)
            await first.fire_due(now)

    run_async(go())
    ticks = [r["scheduled_for"] for r in runs_of(store, job)]
    assert ticks == ["2026-11-22T08:01:00Z", "2026-11-22T08:02:00Z", "2026-11-22T08:03:00Z"]


@pytest.mark.parametrize(
    ("policy", "run_ticks", "skipped"),
    [("none", 0, 5), ("latest", 1, 4), ("all", 3, 2)],
)
def test_catch_up_after_downtime(tmp_path: Path, policy: str, run_ticks: int, skipped: int) -> None:
    store, manager, _ = make(tmp_path)
    job = add_job(
        store,
        "*/10 * * * *",
        T0,
        catch_up=policy,
        catch_up_cap=3,
        overlap="allow",
        max_concurrent_runs=10,
    )
    # the service was down for an hour: five ticks (08:10 to 08:50) were missed
    run_async(manager.fire_due(T0 + timedelta(minutes=59)))
    runs = runs_of(store, job)
    assert sum(r["state"] == "queued" for r in runs) == run_ticks
    assert sum(r["state"] == "skipped" for r in runs) == skipped
    assert all(r["message"] for r in runs if r["state"] == "skipped")
    # the schedule goes on from now
    assert store.get_job(job["id"])["next_run_at"] == "2026-11-22T09:00:00Z"


def test_overlap_skip_records_a_skipped_run(tmp_path: Path) -> None:
    store, manager, executor = make(tmp_path)
    job = add_job(store, "* * * * *", T0, overlap="skip")

    async def go() -> None:
        await manager.tick(T0 + timedelta(minutes=1))  # queued, then started
        await manager.tick(T0 + timedelta(minutes=2))  # still running: skipped

    run_async(go())
    states = [r["state"] for r in runs_of(store, job)]
    assert states == ["starting", "skipped"]
    assert executor.launched == [runs_of(store, job)[0]["id"]]


def test_overlap_queue_waits_for_the_running_one(tmp_path: Path) -> None:
    store, manager, executor = make(tmp_path)
    job = add_job(store, "* * * * *", T0, overlap="queue")

    async def go() -> None:
        await manager.tick(T0 + timedelta(minutes=1))
        await manager.tick(T0 + timedelta(minutes=2))

    run_async(go())
    assert [r["state"] for r in runs_of(store, job)] == ["starting", "queued"]
    assert len(executor.launched) == 1


def test_capacity_limits_dispatch(tmp_path: Path) -> None:
    store, manager, executor = make(tmp_path, capacity=2)
    jobs = [add_job(store, "* * * * *", T0, name=f"j{i}") for i in range(5)]
    run_async(manager.tick(T0 + timedelta(minutes=1)))
    assert len(executor.launched) == 2
    queued = [r for j in jobs for r in runs_of(store, j) if r["state"] == "queued"]
    assert len(queued) == 3


def test_timezone_schedule_follows_daylight_saving(tmp_path: Path) -> None:
    before = cron.next_tick("0 9 * * *", "Europe/Paris", datetime(2026, 3, 28, 12, 0))
    after = cron.next_tick("0 9 * * *", "Europe/Paris", datetime(2026, 3, 29, 12, 0))
    assert before == datetime(2026, 3, 29, 7, 0)  # 09:00 CEST
    assert after == datetime(2026, 3, 30, 7, 0)
    assert cron.next_tick("0 9 * * *", "Europe/Paris", datetime(2026, 1, 10, 12, 0)) == datetime(
        2026, 1, 11, 8, 0
    )  # 09:00 CET


@pytest.mark.parametrize(
    ("schedule", "tz", "message"),
    [
        ("61 * * * *", "UTC", "is not a valid cron expression"),
        ("* * *", "UTC", "is not a 5-field cron expression"),
        ("* * * * *", "Nowhere/City", "is not an IANA timezone"),
    ],
)
def test_bad_schedules(schedule: str, tz: str, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        cron.check(schedule, tz)


def test_reconcile_marks_vanished_workers_lost_and_retries(tmp_path: Path) -> None:
    store, manager, _ = make(tmp_path)
    job = add_job(store, "* * * * *", T0, retries=1, retry_backoff_seconds=0)

    class GoneExecutor(RecordingExecutor):
        async def is_alive(self, run: dict[str, Any]) -> bool:
            return False

    async def go() -> None:
        await manager.tick(T0 + timedelta(minutes=1))
        restarted = RunManager(store, GoneExecutor(), tmp_path / "runs", "http://x/")
        await restarted.reconcile()

    run_async(go())
    runs = runs_of(store, job)
    assert [r["state"] for r in runs] == ["lost", "queued"]
    assert runs[1]["retry_of"] == runs[0]["id"] and runs[1]["attempt"] == 2
    events = [e["state"] for e in store.events(runs[0]["id"])]
    assert events == ["queued", "starting", "lost"]


def test_retention_keeps_the_last_n_runs(tmp_path: Path) -> None:
    store, manager, _ = make(tmp_path)
    job = add_job(store, "* * * * *", T0, keep_runs=2, overlap="allow", max_concurrent_runs=10)

    async def go() -> None:
        for _ in range(4):
            run = store.create_run(job, trigger="manual", parameters={})
            await manager.finish(run["id"], "cancelled", retry=False)

    run_async(go())
    assert len(runs_of(store, job)) == 2


def test_cursor_pagination_walks_every_run_once(tmp_path: Path) -> None:
    store, _, _ = make(tmp_path)
    job = add_job(store, "* * * * *", T0)
    made = {store.create_run(job, trigger="manual", parameters={})["id"] for _ in range(250)}
    seen: list[int] = []
    after = None
    while True:
        page = store.list_runs(job_id=job["id"], after=after, limit=100)
        seen += [r["id"] for r in page]
        if len(page) < 100:
            break
        after = page[-1]["id"]
    assert len(seen) == 250 and set(seen) == made
    assert seen == sorted(seen, reverse=True)


def test_state_machine_refuses_illegal_moves(tmp_path: Path) -> None:
    from dsml.scheduler.exceptions import Conflict

    store, _, _ = make(tmp_path)
    job = add_job(store, "* * * * *", T0)
    run = store.create_run(job, trigger="manual", parameters={})
    store.transition(run["id"], "cancelled")
    with pytest.raises(Conflict, match="is cancelled; it cannot become running"):
        store.transition(run["id"], "running")


def test_pausing_cancels_runs_that_have_not_started(tmp_path: Path) -> None:
    store, manager, _ = make(tmp_path, capacity=1)
    busy = add_job(store, "* * * * *", T0, name="busy")
    paused = add_job(store, "* * * * *", T0, name="paused")

    async def go() -> int:
        await manager.tick(T0 + timedelta(minutes=1))  # one starts, the other waits
        return await manager.cancel_queued(paused["id"], "the job was paused")

    assert run_async(go()) == 1
    assert [r["state"] for r in runs_of(store, paused)] == ["cancelled"]
    assert runs_of(store, busy)[0]["state"] == "starting"


def test_dispatch_is_fair_across_users(tmp_path: Path) -> None:
    """With one user's 1,000 runs queued, another user's single run gets the next free slot."""
    store, manager, executor = make(tmp_path, capacity=1)
    busy = store.create_job(
        "flood",
        {
            "name": "flood",
            "environment": "python-minimal",
            "parameters": {},
            "overlap": "allow",
            "max_concurrent_runs": 1000,
        },
        "nb.ipynb",
        NOTEBOOK,
        "0" * 64,
        {},
        None,
    )[0]
    lone = add_job(store, "0 0 1 1 *", T0, name="lone")
    flood = [store.create_run(busy, trigger="manual", parameters={})["id"] for _ in range(1000)]

    async def go() -> None:
        await manager.dispatch(T0)  # the slot goes to the flood's oldest run
        mine = store.create_run(lone, trigger="manual", parameters={})
        await manager.finish(executor.launched[0], "succeeded")
        await manager.dispatch(T0)  # the next free slot: the lone run, not flood run 2
        assert executor.launched == [flood[0], mine["id"]]
        await manager.finish(mine["id"], "succeeded")
        await manager.dispatch(T0)
        assert executor.launched[2] == flood[1]

    run_async(go())


def test_cron_ticks_of_many_jobs_are_one_store_call(tmp_path: Path) -> None:
    """200 minutely jobs of one user: one tick records every due run in one store call."""
    calls: list[str] = []

    class CountingStore(Store):
        async def run(self, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
            calls.append(fn.__name__)
            return await super().run(fn, *args, **kwargs)

    store = CountingStore(f"sqlite:///{tmp_path / 'scheduler.sqlite'}")
    store.migrate()
    manager = RunManager(store, RecordingExecutor(), tmp_path / "runs", "http://127.0.0.1:1/")
    jobs = [add_job(store, "* * * * *", T0, name=f"minutely {i}") for i in range(200)]
    run_async(manager.fire_due(T0 + timedelta(minutes=1)))
    assert calls == ["fire_due"]
    assert all(len(runs_of(store, j)) == 1 for j in jobs)


def test_a_lost_right_pauses_jobs_and_cancels_queued_runs(tmp_path: Path) -> None:
    """An owner the hub no longer lets run jobs: paused with the reason, queue emptied."""
    from dsml.scheduler.rights import OwnerRights

    class Demoted(OwnerRights):
        async def lookup(self, owner: str) -> str | None:
            return f"its owner {owner} may no longer run jobs" if owner == "ana" else None

    store, manager, executor = make(tmp_path)
    manager.rights = Demoted()
    job = add_job(store, "* * * * *", T0)
    run = store.create_run(job, trigger="manual", parameters={})
    run_async(manager.tick(T0))
    assert executor.launched == []
    assert store.get_run(run["id"])["state"] == "cancelled"
    seen = store.get_job(job["id"])
    assert seen["paused"] and "may no longer run jobs" in seen["paused_reason"]


def test_run_token_ends_once_the_outputs_are_in(tmp_path: Path) -> None:
    """The result starts a short grace for the HTML upload; the upload ends the token."""
    from dsml.scheduler.models import utcnow
    from dsml.scheduler.store import hash_token

    store, manager, _ = make(tmp_path)
    job = add_job(store, "0 0 1 1 *", T0)
    run = store.create_run(job, trigger="manual", parameters={})
    store.transition(run["id"], "starting", token_hash=hash_token("secret"))
    assert store.run_token_hash(run["id"]) == hash_token("secret")

    async def report() -> None:
        await manager.report_result(run["id"], {"state": "succeeded", "notebook": NOTEBOOK})

    run_async(report())
    assert store.run_token_hash(run["id"]) == hash_token("secret")  # the HTML may follow
    later = utcnow() + timedelta(seconds=manager.token_grace_seconds + 5)
    assert store.run_token_hash(run["id"], now=later) is None
    store.outputs_done(run["id"], 10)
    assert store.run_token_hash(run["id"]) is None
