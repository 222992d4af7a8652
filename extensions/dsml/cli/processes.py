"""What `dsml up` runs, written down under the data dir, and how to stop it when it is left behind.

`dsml up` is the platform's supervisor. It records itself, the hub and the proxy in
`<data dir>/hub/processes.json`, each with its process group and its start time from
`/proc/<pid>/stat`: a pid only counts as the recorded process while its start time is the
same, so a pid the kernel has given to another program since is never signalled. `dsml up`,
`dsml status` and `dsml down` read that record; a record whose `dsml up` is gone means a
platform was left behind (by `kill -9`, say), and `stop_left_behind` stops what is still running
of it: the recorded processes, the members of their process groups, and every process whose
working directory is inside the data dir and that started after that `dsml up` (the hub starts
services and user servers there). Processes with a controlling terminal are spared: the
platform starts none (a person's shell `cd`-ed into the data dir has one).

When the hub alone dies (`kill -9`, the OOM killer) while `dsml up` runs on, `services_of_hub`
finds the managed services it started (they hold their ports, so a new hub could not start its
own) by what the hub put in their environment; user servers, the scheduler's workers and their
kernels are not among them and run on.

Linux only (`/proc`), as the rest of the local mode.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dsml.client import HEALTH_PATH
from dsml.datadir import DataDir
from dsml.utils import write_atomic

SUPERVISOR = "dsml-up"
HUB = "hub"
PROXY = "proxy"


def health_url(url: str) -> str:
    """The health endpoint of the platform at `url` (its public URL, base URL included)."""
    return url.rstrip("/") + HEALTH_PATH


def record_path(datadir: DataDir) -> Path:
    """The file that records what `dsml up` runs for this data dir."""
    return datadir.hub / "processes.json"


@dataclass(frozen=True)
class ProcessInfo:
    """What /proc says about one live process."""

    pid: int
    ppid: int
    pgid: int
    has_terminal: bool
    start_time: int
    """Clock ticks after boot (field 22 of /proc/<pid>/stat): with the pid, names a process."""


def process_info(pid: int) -> ProcessInfo | None:
    """Read /proc/<pid>/stat; None when there is no such process or it is a zombie."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ')'
    fields = text[text.rfind(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return ProcessInfo(
        pid=pid,
        ppid=int(fields[1]),
        pgid=int(fields[2]),
        has_terminal=int(fields[4]) != 0,
        start_time=int(fields[19]),
    )


def describe(pid: int) -> dict[str, int] | None:
    """The record entry of a live process: pid, process group and start time."""
    info = process_info(pid)
    if info is None:
        return None
    return {"pid": pid, "pgid": info.pgid, "start_time": info.start_time}


def is_alive(entry: dict[str, Any] | None) -> bool:
    """True while the recorded process runs: same pid and same start time, not a zombie."""
    if not entry:
        return False
    info = process_info(int(entry["pid"]))
    return info is not None and info.start_time == entry.get("start_time")


def command_line(pid: int) -> str:
    """The command line of a process, '' when it is gone or unreadable."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def read_record(datadir: DataDir) -> dict[str, Any] | None:
    """The record `dsml up` keeps for this data dir, None when there is none (or it is garbled)."""
    try:
        record = json.loads(record_path(datadir).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("processes"), dict):
        return None
    return record


def write_record(datadir: DataDir, record: dict[str, Any]) -> None:
    """Replace the record atomically, so a reader never sees half of it."""
    write_atomic(record_path(datadir), json.dumps(record, indent=2) + "\n", mode=0o600)


def clear_record(datadir: DataDir) -> None:
    """Remove the record (the platform stopped cleanly)."""
    record_path(datadir).unlink(missing_ok=True)


def last_stop_path(datadir: DataDir) -> Path:
    """The file that says how the last `dsml up` of this data dir ended."""
    return datadir.hub / "last-stop.json"


def write_last_stop(datadir: DataDir, record: dict[str, Any], reason: str) -> None:
    """Record how `dsml up` ended (`dsml status` shows it while nothing runs)."""
    stop = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "reason": reason,
        "url": record.get("url"),
        "started_at": record.get("started_at"),
        "hub_restarts": int(record.get("hub_restarts", 0)),
        "log": record.get("log"),
    }
    write_atomic(last_stop_path(datadir), json.dumps(stop, indent=2) + "\n", mode=0o600)


def read_last_stop(datadir: DataDir) -> dict[str, Any] | None:
    """How the last `dsml up` ended, None when unknown (never ran, or another account's)."""
    try:
        stop = json.loads(last_stop_path(datadir).read_text())
    except (OSError, ValueError):
        return None
    return stop if isinstance(stop, dict) and isinstance(stop.get("reason"), str) else None


def new_record(datadir: DataDir, url: str) -> dict[str, Any]:
    """A record of this process as the `dsml up` of `datadir` serving `url`, still starting."""
    return {
        "data_dir": str(datadir.root),
        "state": "starting",
        "url": url,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "log": _log_file(),
        "processes": {SUPERVISOR: describe(os.getpid())},
    }


def _log_file() -> str | None:
    """Where our stdout goes when it is a regular file (`dsml up --detach`, a test's log)."""
    try:
        target = os.readlink("/proc/self/fd/1")
    except OSError:
        return None
    return target if Path(target).is_file() else None


def running_supervisor(datadir: DataDir) -> dict[str, Any] | None:
    """The record, when its `dsml up` is still running; None otherwise."""
    record = read_record(datadir)
    if record and is_alive(record["processes"].get(SUPERVISOR)):
        return record
    return None


def _all_processes() -> Iterable[ProcessInfo]:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            info = process_info(int(entry.name))
            if info is not None:
                yield info


def _ancestors() -> set[int]:
    """This process and its ancestors: never ours to stop (e.g. a shell inside the data dir)."""
    pids = set()
    pid = os.getpid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        info = process_info(pid)
        if info is None:
            break
        pid = info.ppid
    return pids


def _cwd_inside(pid: int, folder: Path) -> bool:
    try:
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return False
    return cwd == folder or folder in cwd.parents


@dataclass
class Target:
    """A process to stop: who it is (pid and start time) and what to call it."""

    pid: int
    start_time: int
    label: str
    role: str = ""

    def alive(self) -> bool:
        """True while this very process (not a reuse of its pid) runs."""
        info = process_info(self.pid)
        return info is not None and info.start_time == self.start_time

    def signal(self, signum: int) -> None:
        """Send `signum` if it is still this process."""
        if self.alive():
            try:
                os.kill(self.pid, signum)
            except (ProcessLookupError, PermissionError):
                pass


def find_targets(datadir: DataDir, record: dict[str, Any] | None) -> list[Target]:
    """Everything of the platform in `record` that still runs, the hub first.

    That is the recorded processes that still run, the members of their process groups, and
    the processes without a terminal whose working directory is inside the data dir and that
    started after the recorded `dsml up`; never this process or its ancestors. Without a
    record, only a live configurable-http-proxy named by the proxy's pid file counts: nothing
    else tells a platform's processes from others then.
    """
    spare = _ancestors()
    found: dict[int, Target] = {}

    def add(info: ProcessInfo, label: str, role: str = "") -> None:
        if info.pid not in spare and info.pid not in found:
            found[info.pid] = Target(info.pid, info.start_time, label, role)

    entries = record["processes"] if record else {}
    since = (entries.get(SUPERVISOR) or {}).get("start_time")
    for name in (HUB, PROXY, SUPERVISOR):
        info = process_info(int(entries[name]["pid"])) if is_alive(entries.get(name)) else None
        if info is not None:
            add(info, f"{name} (pid {info.pid})", name)
    proxy = _proxy_from_pid_file(datadir)
    if proxy is not None and (since is None or proxy.start_time >= since):
        add(proxy, f"{PROXY} (pid {proxy.pid})", PROXY)
    if since is None:
        return list(found.values())
    later = [p for p in _all_processes() if p.start_time >= since]
    for info in later:
        if not info.has_terminal and _cwd_inside(info.pid, datadir.root):
            add(info, _short_name(info.pid))
    # a live group leader's group holds what it started (a worker's kernel, a server's child)
    leaders = {t.pid for t in found.values() if (i := process_info(t.pid)) and i.pgid == t.pid}
    for info in later:
        if info.pgid in leaders:
            add(info, _short_name(info.pid))
    return sorted(found.values(), key=lambda t: (t.role != HUB, t.start_time))


def _proxy_from_pid_file(datadir: DataDir) -> ProcessInfo | None:
    try:
        pid = int((datadir.hub / "proxy.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    if "configurable-http-proxy" not in command_line(pid):
        return None  # the pid is someone else's by now
    return process_info(pid)


def _short_name(pid: int) -> str:
    words = command_line(pid).split()
    shown = [Path(w).name if i == 0 else w for i, w in enumerate(words[:5])]
    return f"{' '.join(shown) or '?'} (pid {pid})"


def environment(pid: int) -> dict[str, str]:
    """The environment a process started with ({} when it is gone or unreadable)."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.decode(errors="replace").partition("=") for item in raw.split(b"\0") if item)
    return {name: value for name, _, value in pairs}


def services_of_hub(hub_url: str, since: int) -> list[Target]:
    """The managed services a hub started (scheduler, apps, portal, culler) that still run.

    The hub gives each one `JUPYTERHUB_SERVICE_NAME` and its API URL, under `hub_url` (the hub's
    own address and port: another platform's services on this machine never match); `since` is
    the hub's start time (clock ticks after boot). User servers get no service name, and the
    scheduler's workers no `JUPYTERHUB_*` variable at all: runs in flight and kernels are spared.
    """
    spare = _ancestors()
    found = []
    for info in _all_processes():
        if info.start_time < since or info.pid in spare:
            continue
        env = environment(info.pid)
        name = env.get("JUPYTERHUB_SERVICE_NAME")
        if name and env.get("JUPYTERHUB_API_URL", "").startswith(hub_url.rstrip("/") + "/"):
            found.append(Target(info.pid, info.start_time, f"{name} (pid {info.pid})", name))
    return found


def kill_targets(targets: list[Target], timeout: float = 10.0) -> list[Target]:
    """SIGKILL `targets` at once and wait until they are gone; return those that were running.

    No SIGTERM first: a service's orderly stop ends work that must outlive it (the scheduler
    stops its runs in flight), and the services are built to survive a crash.
    """
    running = [t for t in targets if t.alive()]
    for t in running:
        t.signal(signal.SIGKILL)
    _wait_gone(running, timeout)
    return running


def stop_targets(targets: list[Target], grace: float = 20.0) -> list[Target]:
    """Stop `targets`: SIGTERM the hub and wait for it, then the rest, SIGKILL what remains.

    The hub goes first because it stops the proxy, services and user servers itself when it
    can. Each wait lasts at most `grace` seconds. Returns the targets that were running.
    """
    running = [t for t in targets if t.alive()]
    first = [t for t in running if t.role == HUB]
    for batch in (first, [t for t in running if t not in first]):
        for t in batch:
            t.signal(signal.SIGTERM)
        _wait_gone(batch, grace)
    for t in running:
        t.signal(signal.SIGKILL)
    _wait_gone(running, 5.0)
    return running


def _wait_gone(targets: list[Target], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while any(t.alive() for t in targets) and time.monotonic() < deadline:
        time.sleep(0.1)


def stop_left_behind(
    datadir: DataDir, say: Callable[[str], None], grace: float = 20.0
) -> list[Target]:
    """Stop a platform whose `dsml up` is gone but whose processes may run on; say so in a line.

    Does nothing when the recorded `dsml up` still runs (see `running_supervisor`). Clears the
    record afterwards. Returns what was stopped.
    """
    record = read_record(datadir)
    if record and is_alive(record["processes"].get(SUPERVISOR)):
        return []
    stopped = stop_targets(find_targets(datadir, record), grace)
    if record:
        pid = (record["processes"].get(SUPERVISOR) or {}).get("pid")
        if stopped:
            say(
                f"stopped the platform left behind on {datadir.root} by dsml up pid {pid}, "
                f"which had died: {summary(stopped)}"
            )
        else:
            say(
                f"dsml up pid {pid} on {datadir.root} had died without stopping the platform; "
                "nothing of it was still running"
            )
        clear_record(datadir)
    elif stopped:
        say(f"stopped a proxy left behind on {datadir.root}: {summary(stopped)}")
    (datadir.hub / "proxy.pid").unlink(missing_ok=True)
    return stopped


def summary(targets: list[Target], shown: int = 3) -> str:
    """The stopped processes for one line: 'hub (pid 1), proxy (pid 2), ... and 4 more (...)'."""
    labels = [t.label for t in targets]
    text = ", ".join(labels[:shown])
    if len(labels) > shown:
        pids = ", ".join(str(t.pid) for t in targets[shown:])
        text += f" and {len(labels) - shown} more (pids {pids})"
    return text
