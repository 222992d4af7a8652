"""The local executor: one worker subprocess per run, each in its own process group.

It keeps a small pool of pre-started workers per environment; each has already started its
kernel and waits on stdin for a run, so a run does not pay kernel start-up. A worker serves
one run and exits; the pool is refilled behind it. Stopping a run kills the worker's whole
process group, kernel included.

With `account_prefix` set (the hub sets it when the platform runs as root), every run executes
as its job owner's system account, in a work folder of the run owned by that account, with an
environment that holds no token of the platform's: where the notebook needs the platform it
gets a token of its owner, made for the run (`dsml.scheduler.tokens`), through stdin, never
argv. A started kernel cannot change account, so the pool has two kinds of warm workers:
per environment, workers that started as root, imported Papermill and nbconvert and wait; they
take on the owner's account when a run comes and only then start the kernel (a new owner pays
kernel start-up only). Per (environment, owner) who ran in the last `owner_warm_seconds`,
workers that run as that owner with their kernel started (a warm owner pays nothing).
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from traitlets import Dict, Float, Integer, Unicode, default

from dsml.kernels import kernel_name
from dsml.scheduler.executors import Executor, Launch
from dsml.scheduler.tokens import RunToken, request_run_token, revoke_run_token
from dsml.system_accounts import Account, account_name, is_locked, lookup

_PLATFORM_ONLY = re.compile(
    r"^(JUPYTERHUB_.*|.*TOKEN.*|.*SECRET.*|.*PASSWORD.*|DSML_.*_DB_URL|DSML_SETTINGS_JSON)$"
)
"""Variables of the scheduler's environment a worker never gets: the platform's credentials."""

AS_ROOT = ""
"""Pool key of workers that start as root and take on the owner's account when a run comes."""


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


def _device(path: str) -> int | None:
    """The filesystem a path is on (None when it does not exist yet)."""
    try:
        return os.stat(path).st_dev
    except OSError:
        return None


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
    account_prefix = Unicode(
        "",
        config=True,
        help="Run each run as its owner's system account, whose name starts with this prefix "
        "(empty: every run as the scheduler's own account). The hub sets it as root.",
    )
    owner_warm_seconds = Float(
        600.0,
        config=True,
        help="Seconds an owner's own warm workers are kept after their last run started.",
    )
    max_warm_owners = Integer(
        4, config=True, help="Owners at most that have warm workers of their own (a count)."
    )
    memory_limit_bytes = Integer(
        4 * 1024**3,
        config=True,
        help="Data memory a run's kernel may use, in bytes (RLIMIT_DATA: heap and private "
        "maps); a notebook over it gets a MemoryError and its run fails naming it (0: no cap).",
    )
    niceness = Integer(
        0,
        config=True,
        help="CPU niceness of the workers and their kernels (0-19; the accounts.niceness "
        "setting): the hub and the services keep answering while runs compute.",
    )
    hub_api_url = Unicode(config=True, help="The hub's API URL, to ask for run tokens.")
    hub_api_token = Unicode(config=True, help="The scheduler's hub token, to ask for run tokens.")
    run_token_seconds = Integer(
        86400, config=True, help="Lifetime of a run's token when its job has no deadline (s)."
    )

    @default("hub_api_url")
    def _hub_api_url(self) -> str:
        return os.environ.get("JUPYTERHUB_API_URL", "")

    @default("hub_api_token")
    def _hub_api_token(self) -> str:
        return os.environ.get("JUPYTERHUB_API_TOKEN", "")

    @default("log_dir")
    def _log_dir(self) -> str:
        data_dir = getattr(self.parent, "data_dir", "")
        if not data_dir:
            return ""
        # a waiting worker's log becomes its run's log by a rename, which cannot cross
        # filesystems: with the outputs folder on a volume of its own, the logs go there too
        outputs = getattr(getattr(self.parent, "outputs", None), "root", "")
        if outputs and _device(outputs) != _device(data_dir):
            return str(Path(outputs) / ".worker-logs")
        return str(Path(data_dir) / "logs")

    @default("worker_env")
    def _worker_env(self) -> dict[str, str]:
        data_dir = getattr(self.parent, "data_dir", "")
        return {"DSML_WORKER_TMP": str(Path(data_dir) / "work")} if data_dir else {}

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        # (environment, account name or AS_ROOT) -> waiting workers
        self._pool: dict[tuple[str, str], list[subprocess.Popen]] = {}
        self._children: dict[int, subprocess.Popen] = {}
        self._filling: set[tuple[str, str]] = set()
        self._owners_seen: dict[str, float] = {}  # account name -> when its last run started
        self._run_tokens: dict[int, RunToken] = {}  # worker pid -> its run's token
        self._logs: dict[int, Path] = {}  # waiting worker pid -> its own log, until a run

    @property
    def as_owners(self) -> bool:
        """Whether runs execute as their owners' accounts."""
        return bool(self.account_prefix)

    def _work_root(self) -> Path | None:
        """The folder runs' work folders live in (1733 as root: each account makes its own)."""
        root = self.worker_env.get("DSML_WORKER_TMP")
        if not root:
            return None
        path = Path(root)
        if self.as_owners:
            path.mkdir(parents=True, exist_ok=True)
            os.chmod(path.parent, 0o711)
            os.chmod(path, 0o1733)
        return path

    def _environment(self, account: Account | None) -> dict[str, str]:
        """The worker's environment: the scheduler's, less the platform's credentials."""
        env = {k: v for k, v in os.environ.items() if not _PLATFORM_ONLY.match(k)}
        env.update(self.worker_env)
        if account is not None:
            env.update(HOME=account.home, USER=account.name, LOGNAME=account.name)
        return env

    def _spawn(
        self, kernel_name: str, account: Account | None = None, log_path: str = ""
    ) -> subprocess.Popen:
        """Start a worker: as `account` with its kernel, or (account None, as owners) as root
        waiting to take on the owner's account; not as owners, as the scheduler's account.

        It writes to `log_path` (a run's log), or to a log of its own (0600) that becomes the
        run's log when a run is handed to it: no log is shared between runs.
        """
        command = [self.python, "-m", "dsml.scheduler.worker", "--kernel", kernel_name]
        if self.memory_limit_bytes > 0:
            command.append(f"--memory-limit-bytes={self.memory_limit_bytes}")
        if self.niceness > 0:
            command.append(f"--niceness={self.niceness}")
        ids: dict[str, Any] = {}
        if account is not None:
            ids = {"user": account.uid, "group": account.gid, "extra_groups": account.groups}
        elif self.as_owners:
            command.append("--take-account")
        if log_path:
            path = Path(log_path)
        else:
            folder = Path(self.log_dir or ".")
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            path = folder / f"worker-{uuid.uuid4().hex[:12]}.log"
        self._work_root()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "ab") as log:
            proc = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._environment(account),
                cwd=account.home if account is not None else None,
                start_new_session=True,  # its own process group: stop kills the kernel too
                **ids,
            )
        self._children[proc.pid] = proc
        if not log_path:
            self._logs[proc.pid] = path
        return proc

    async def _fill(self, environment: str, account: Account | None = None) -> None:
        key = (environment, account.name if account is not None else AS_ROOT)
        if key in self._filling:
            return
        self._filling.add(key)
        try:
            pool = self._pool.setdefault(key, [])
            pool[:] = [p for p in pool if p.poll() is None]
            while len(pool) < self.warm_workers:
                pool.append(self._spawn(kernel_name(environment), account))
        finally:
            self._filling.discard(key)

    async def prepare(self, environments: list[str]) -> None:
        """Pre-start `warm_workers` workers for each environment."""
        self._environments = list(environments)
        for environment in environments:
            await self._fill(environment)

    async def maintain(self, upcoming: list[tuple[str, str]]) -> None:
        """Refill pools ahead of demand: a waiting worker that died is replaced, and the owner
        of a job due soon gets warm workers of their own before the tick comes."""
        if not self.warm_workers:
            return
        self._reap()
        for environment in getattr(self, "_environments", []):
            await self._fill(environment)
        if not self.as_owners:
            return
        for environment, owner in upcoming:
            name = account_name(owner, self.account_prefix)
            account = lookup(name)
            if account is None or is_locked(name):
                continue  # the run itself will say why it cannot start
            self._owners_seen[name] = time.monotonic()
            await self._fill(environment, account)
        self._forget_cold_owners()

    def _take(self, launch: Launch, account: Account | None) -> subprocess.Popen:
        keys = [(launch.environment, AS_ROOT)]
        if account is not None:
            keys.insert(0, (launch.environment, account.name))
        for key in keys:
            pool = self._pool.get(key, [])
            while pool:
                proc = pool.pop(0)
                if proc.poll() is None:
                    own = self._logs.get(proc.pid)
                    if own is not None and launch.log_path:
                        # the worker keeps its open file: moved, it is the run's log from now on
                        try:
                            os.replace(own, launch.log_path)
                        except OSError as e:
                            if e.errno != errno.EXDEV:
                                raise
                            # log_dir set on another filesystem than the outputs: this
                            # worker's log cannot be the run's; a fresh worker writes it
                            self.log.warning(
                                "%s and the outputs folder are on different filesystems: "
                                "warm workers cannot hand their log to a run (set "
                                "LocalExecutor.log_dir beside the outputs)",
                                own.parent,
                            )
                            _kill_worker(proc)
                            continue
                    self._logs.pop(proc.pid, None)
                    return proc
        return self._spawn(launch.kernel_name, account, launch.log_path)

    def _owner_account(self, launch: Launch) -> Account:
        """The job owner's account; refuse a run whose owner has none or a locked one."""
        name = launch.account or account_name(launch.owner, self.account_prefix)
        account = lookup(name)
        if account is None:
            raise RuntimeError(
                f"user {launch.owner} has no system account {name}; the hub makes it when "
                "the user is added (restart the platform to make missing ones)"
            )
        if is_locked(name):
            raise RuntimeError(
                f"the account {name} of user {launch.owner} is locked (the user was deleted); "
                "nothing runs as it any more"
            )
        return account

    def _forget_cold_owners(self) -> None:
        """Stop the warm workers of owners who have not run for `owner_warm_seconds`."""
        now = time.monotonic()
        recent = sorted(self._owners_seen.items(), key=lambda kv: kv[1], reverse=True)
        keep = {
            name
            for name, seen in recent[: self.max_warm_owners]
            if now - seen < self.owner_warm_seconds
        }
        for (environment, owner), pool in list(self._pool.items()):
            if owner != AS_ROOT and owner not in keep:
                for proc in pool:
                    _kill_worker(proc)
                del self._pool[(environment, owner)]
        self._owners_seen = {k: v for k, v in self._owners_seen.items() if k in keep}

    async def _run_token(self, run: dict[str, Any], launch: Launch) -> RunToken | None:
        """A token of the owner for this run, expiring with its deadline (or a day)."""
        if not (self.hub_api_url and self.hub_api_token and launch.owner):
            return None
        seconds = self.run_token_seconds
        if run.get("deadline_at"):
            deadline = datetime.fromisoformat(run["deadline_at"].rstrip("Z"))
            remaining = deadline - datetime.now(UTC).replace(tzinfo=None)
            seconds = int(remaining.total_seconds()) + 300
        return await request_run_token(
            self.hub_api_url,
            self.hub_api_token,
            launch.owner,
            seconds,
            note=f"scheduler run {launch.run_id}",
        )

    async def start(self, run: dict[str, Any], launch: Launch) -> dict[str, Any]:
        """Hand the run to a pre-started worker (or a new one) and refill the pool."""
        if not launch.owner and run.get("owner"):
            launch = dataclasses.replace(launch, owner=run["owner"])
        account = None
        if self.as_owners:
            account = self._owner_account(launch)
            launch = dataclasses.replace(launch, account=account.name)
            self._owners_seen[account.name] = time.monotonic()
            self._forget_cold_owners()
        run_token = await self._run_token(run, launch) if self.as_owners else None
        assignment: dict[str, Any] = {
            "run_id": launch.run_id,
            "token": launch.token,
            "service_url": launch.service_url,
            "kernel_name": launch.kernel_name,
        }
        if account is not None:
            assignment["account"] = dataclasses.asdict(account) | {"groups": account.groups}
            # what the notebook gets of the platform: its owner's token, where the hub is
            assignment["environment"] = {
                "JUPYTERHUB_API_URL": self.hub_api_url,
                "DSML_HUB_URL": getattr(self.parent, "public_url", "") or "",
                "JUPYTERHUB_USER": launch.owner,
            }
            if run_token is not None:
                assignment["environment"]["JUPYTERHUB_API_TOKEN"] = run_token.token
        proc = self._take(launch, account)
        try:
            assert proc.stdin is not None
            proc.stdin.write((json.dumps(assignment) + "\n").encode())
            proc.stdin.close()
        except (BrokenPipeError, OSError):
            # the warm worker died while waiting: use a fresh one
            proc = self._spawn(launch.kernel_name, account, launch.log_path)
            assert proc.stdin is not None
            proc.stdin.write((json.dumps(assignment) + "\n").encode())
            proc.stdin.close()
        if run_token is not None:
            self._run_tokens[proc.pid] = run_token
        if self.warm_workers:
            loop = asyncio.get_running_loop()
            loop.call_soon(lambda: asyncio.ensure_future(self._fill(launch.environment)))
            if account is not None:
                loop.call_soon(
                    lambda: asyncio.ensure_future(self._fill(launch.environment, account))
                )
        return {"pid": proc.pid, "start_time": process_start_time(proc.pid)}

    def _reap(self) -> None:
        for pid, proc in list(self._children.items()):
            if proc.poll() is not None:
                del self._children[pid]
                own = self._logs.pop(pid, None)
                if own is not None:
                    own.unlink(missing_ok=True)  # a pool worker that never got a run
                token = self._run_tokens.pop(pid, None)
                if token is not None:
                    # the run is over: its token goes with it
                    asyncio.ensure_future(
                        revoke_run_token(self.hub_api_url, self.hub_api_token, token)
                    )

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
                _kill_worker(proc)
                own = self._logs.pop(proc.pid, None)
                if own is not None:
                    own.unlink(missing_ok=True)
        self._pool.clear()


def _kill_worker(proc: subprocess.Popen) -> None:
    """SIGKILL a waiting worker and its kernel's process group."""
    groups = {proc.pid}
    for child in descendants(proc.pid):
        try:
            groups.add(os.getpgid(child))
        except ProcessLookupError:
            pass
    _kill_groups(groups, signal.SIGKILL)
    proc.wait()
