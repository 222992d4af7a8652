"""Warm workers ahead of demand: the pool is topped up before runs come, not after.

The run manager tells the executor, on every pass, which (environment, owner) have a cron
tick coming within `warm_ahead_seconds`; the local executor replaces a waiting worker that
died and readies the owner's own workers before the tick.
"""

from __future__ import annotations

import os
import signal
from datetime import timedelta
from pathlib import Path
from typing import Any

from test_scheduler_cron import T0, RecordingExecutor, add_job, make

from dsml.scheduler.executors.local import LocalExecutor

from conftest import DataDir, run_async


class UpcomingExecutor(RecordingExecutor):
    """Records what the run manager says is coming."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.upcoming: list[list[tuple[str, str]]] = []

    async def maintain(self, upcoming: list[tuple[str, str]]) -> None:
        self.upcoming.append(upcoming)


def test_the_manager_names_the_jobs_due_soon(tmp_path: Path) -> None:
    store, manager, _ = make(tmp_path)
    executor = UpcomingExecutor(capacity=10)
    manager.executor = executor
    soon = add_job(store, "1 8 * * *", T0, name="soon")  # next tick 08:01, 30 s after T0
    add_job(store, "0 12 * * *", T0, name="later", environment="datascience")  # hours away
    run_async(manager.tick(T0))
    assert executor.upcoming[-1] == [(soon["environment"], "ana")]
    run_async(manager.tick(T0 - timedelta(minutes=5)))
    assert executor.upcoming[-1] == []


def test_a_waiting_worker_that_died_is_replaced_before_a_run_needs_it(
    env_datadir: DataDir, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("JUPYTER_PATH", str(env_datadir.jupyter_data))
    executor = LocalExecutor(warm_workers=1, log_dir=str(tmp_path / "logs"), account_prefix="")

    async def scenario() -> tuple[int, int]:
        await executor.prepare(["python-minimal"])
        first = next(iter(executor._pool.values()))[0]
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        await executor.maintain([])
        pool = next(iter(executor._pool.values()))
        live = [p for p in pool if p.poll() is None]
        try:
            return first.pid, live[0].pid if live else -1
        finally:
            await executor.shutdown()

    dead, replacement = run_async(scenario())
    assert replacement not in (-1, dead)
