"""The local executor: one worker subprocess per run, each in its own process group.

It keeps a small pool of pre-started workers per environment; each has already started its
kernel and waits on stdin for a run, so a run does not pay kernel start-up. A worker serves
one run and exits; the pool is refilled behind it. Stopping a run kills the worker's whole
process group, kernel included.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from traitlets import Dict, Float, Integer, Unicode, default

from dsml.kernels import kernel_name
from dsml.scheduler.executors import Executor, Launch


def process_start_time(pid: int) -> int | None:
    """The start time of a process in clock ticks since boot (tells a pid reused apart)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":  # a zombie has finished
        return None
    return int(fields[19])


def descendants(pid: int) -> list[int]:
    """Pids of every process below `pid` (a kernel runs in a session of its own below it)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _kill_groups(pgids: set[int], sig: int) -> None:
    for pgid in pgids:
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass


class LocalExecutor(Executor):
    """Run each job as a worker subprocess on this machine."""

    name = "local"

    warm_workers = Integer(
        1,
        config=True,
        help="Pre-started workers (each with its kernel running) kept per environment (a count).",
    )
    python = Unicode(sys.executable, config=True, help="Python that runs the worker entry point.")
    worker_env = Dict(
        config=True, help="Extra environment variables for workers (JUPYTER_PATH for kernelspecs)."
    )
    log_dir = Unicode("", config=True, help="Folder for the workers' own log files.")
    stop_grace_seconds = Float(
        3.0, config=True, help="Seconds between SIGTERM and SIGKILL when stopping a run."
    )

    @default("log_dir")
    def _log_dir(self) -> str:
        data_dir = getattr(self.parent, "data_dir", "")
        return str(Path(data_dir) / "logs") if data_dir else ""

    @default("worker_env")
    def _worker_env(self) -> dict[str, str]:
        data_dir = getattr(self.parent, "data_dir", "")
        return {"DSML_WORKER_TMP": str(Path(data_dir) / "work")} if data_dir else {}

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._pool: dict[str, list[subprocess.Popen]] = {}
        self._children: dict[int, subprocess.Popen] = {}
        self._filling: set[str] = set()
        self._logs: dict[int, Path] = {}

    def _spawn(self, kernel_name: str, log_path: str = "") -> subprocess.Popen:
        """Start a worker writing to `log_path` (a run's log), or to a log of its own (0600)
        that becomes the run's log when a run is handed to it: nothing is shared."""
        env = dict(os.environ)
        env.update(self.worker_env)
        if log_path:
            path = Path(log_path)
        else:
            folder = Path(self.log_dir or ".")
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            path = folder / f"worker-{uuid.uuid4().hex[:12]}.log"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "ab") as log:
            proc = subprocess.Popen(
                [self.python, "-m", "dsml.scheduler.worker", "--kernel", kernel_name],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # its own process group: stop kills the kernel too
            )
        self._children[proc.pid] = proc
        if not log_path:
            self._logs[proc.pid] = path
        return proc

    async def _fill(self, environment: str) -> None:
        if environment in self._filling:
            return
        self._filling.add(environment)
        try:
            pool = self._pool.setdefault(environment, [])
            pool[:] = [p for p in pool if p.poll() is None]
            while len(pool) < self.warm_workers:
                pool.append(self._spawn(kernel_name(environment)))
        finally:
            self._filling.discard(environment)

    async def prepare(self, environments: list[str]) -> None:
        """Pre-start `warm_workers` workers for each environment."""
        for environment in environments:
            await self._fill(environment)

    def _take(self, launch: Launch) -> subprocess.Popen:
        pool = self._pool.get(launch.environment, [])
        while pool:
            proc = pool.pop(0)
            if proc.poll() is None:
                own = self._logs.pop(proc.pid, None)
                if own is not None and launch.log_path:
                    # the worker keeps its open file: moved, it is the run's log from now on
                    os.replace(own, launch.log_path)
                return proc
        return self._spawn(launch.kernel_name, launch.log_path)

    async def start(self, run: dict[str, Any], launch: Launch) -> dict[str, Any]:
        """Hand the run to a pre-started worker (or a new one) and refill the pool."""
        proc = self._take(launch)
        assignment = {
            "run_id": launch.run_id,
            "token": launch.token,
            "service_url": launch.service_url,
            "kernel_name": launch.kernel_name,
        }
        try:
            assert proc.stdin is not None
            proc.stdin.write((json.dumps(assignment) + "\n").encode())
            proc.stdin.close()
        except (BrokenPipeError, OSError):
            # the warm worker died while waiting: use a fresh one
            proc = self._spawn(launch.kernel_name, launch.log_path)
            assert proc.stdin is not None
            proc.stdin.write((json.dumps(assignment) + "\n").encode())
            proc.stdin.close()
        if self.warm_workers:
            asyncio.get_running_loop().call_soon(
                lambda: asyncio.ensure_future(self._fill(launch.environment))
            )
        return {"pid": proc.pid, "start_time": process_start_time(proc.pid)}

    def _reap(self) -> None:
        for pid, proc in list(self._children.items()):
            if proc.poll() is not None:
                del self._children[pid]
                own = self._logs.pop(pid, None)
                if own is not None:
                    own.unlink(missing_ok=True)  # a pool worker that never got a run

    async def is_alive(self, run: dict[str, Any]) -> bool:
        """Whether the run's worker process (same pid and start time) still runs."""
        self._reap()
        ref = run.get("executor_ref") or {}
        pid = ref.get("pid")
        if not pid:
            return False
        started = process_start_time(pid)
        return started is not None and started == ref.get("start_time")

    async def stop(self, run: dict[str, Any]) -> None:
        """SIGTERM the worker's process group and its kernel's, then SIGKILL what is left."""
        if not await self.is_alive(run):
            return
        pid = run["executor_ref"]["pid"]
        groups = {pid}
        for child in descendants(pid):
            try:
                groups.add(os.getpgid(child))
            except ProcessLookupError:
                pass
        loop = asyncio.get_running_loop()
        _kill_groups(groups, signal.SIGTERM)
        deadline = loop.time() + self.stop_grace_seconds
        while loop.time() < deadline:
            self._reap()
            if not await self.is_alive(run):
                break
            await asyncio.sleep(0.05)
        # the kernel may outlive its worker by a moment: SIGKILL every group it had
        _kill_groups(groups, signal.SIGKILL)
        self._reap()

    async def shutdown(self) -> None:
        """Stop the pre-started workers and their kernels (they hold no run)."""
        for pool in self._pool.values():
            for proc in pool:
                groups = {proc.pid}
                for child in descendants(proc.pid):
                    try:
                        groups.add(os.getpgid(child))
                    except ProcessLookupError:
                        pass
                _kill_groups(groups, signal.SIGKILL)
                proc.wait()
                own = self._logs.pop(proc.pid, None)
                if own is not None:
                    own.unlink(missing_ok=True)
        self._pool.clear()
