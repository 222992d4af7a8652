"""Executors run one scheduler run each: the base class is the contract, pick one by short name.

An executor starts the worker entry point (`python -m dsml.scheduler.worker`) for a run; the
worker fetches its input from the service with a per-run token and posts progress and results
back. The executor only starts, watches and stops workers: it never writes the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from traitlets import Integer
from traitlets.config import LoggingConfigurable


@dataclass(frozen=True)
class Launch:
    """What a worker needs to find its run: the service URL, the run id and its token.

    `owner` is the job's owner (a hub name); `account` the system account the run executes
    as (empty: the executor's own account, or the executor decides, as the local one does).
    `log_path` is the run's own log file (in the run's folder): an executor that keeps the
    worker's output on this machine writes it there, mode 0600, and nowhere shared.
    """

    run_id: int
    token: str
    service_url: str
    kernel_name: str
    environment: str
    owner: str = ""
    account: str = ""
    log_path: str = ""


class Executor(LoggingConfigurable):
    """Start, watch and stop the workers of runs. Subclasses implement every method."""

    name = "base"

    capacity = Integer(
        2, config=True, help="Runs this executor executes at the same time (a count)."
    )

    async def prepare(self, environments: list[str]) -> None:
        """Get ready to run jobs in these environments (e.g. pre-start kernels)."""

    async def maintain(self, upcoming: list[tuple[str, str]]) -> None:
        """Called on every loop pass: keep ready what `prepare` made ready, ahead of demand.

        `upcoming` lists (environment, owner) of the jobs due within the run manager's
        `warm_ahead_seconds`, so an executor can have their workers waiting when they come.
        """

    async def start(self, run: dict[str, Any], launch: Launch) -> dict[str, Any]:
        """Start the worker of `run`; return a JSON-able reference that finds it again later.

        The reference is stored with the run, so `is_alive` and `stop` work after a restart.
        """
        raise NotImplementedError

    async def is_alive(self, run: dict[str, Any]) -> bool:
        """Whether the worker of `run` (found by its stored reference) still exists."""
        raise NotImplementedError

    async def stop(self, run: dict[str, Any]) -> None:
        """Stop the worker of `run` and everything it started (its kernel too)."""
        raise NotImplementedError

    async def shutdown(self) -> None:
        """Release what `prepare` made; running workers are left to finish."""


def executor_class(name: str) -> type[Executor]:
    """The executor class registered under `name` (entry point group `dsml.executors`)."""
    from importlib.metadata import entry_points

    found = {e.name: e for e in entry_points(group="dsml.executors")}
    if name not in found:
        raise ValueError(f"unknown executor {name!r}; known executors: {', '.join(sorted(found))}")
    return found[name].load()
