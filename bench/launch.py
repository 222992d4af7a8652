"""Start and stop what the benchmarks measure: the platform (`dsml up`) and the peers' virtualenvs.

The platform is started the way a person starts it, `python -m dsml up --demo --settings FILE`,
on a free loopback port with a data dir in a temporary folder; curated environments come from
the shared build cache (.dsml-test/envs), so nothing is rebuilt. Stopping sends Ctrl-C to the
platform's process group and then kills whatever is still running below the data dir.

The peers get their own virtualenvs under bench/.venvs/ (gitignored), installed with uv from
the package index, so their dependency sets are theirs, not the platform's.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform as pyplatform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from dsml.settings import deep_merge

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
VENVS = BENCH / ".venvs"
ENV_CACHE = Path(os.environ.get("DSML_TEST_ENV_CACHE", ROOT / ".dsml-test" / "envs"))
ENVIRONMENTS = ["python-minimal", "datascience"]
UV = Path(sys.executable).parent / "uv"

Progress = Callable[[str], None]
ACCOUNT_PREFIX = "dsml-bench-"
"""Prefix of the system accounts a benchmark platform makes as root."""


def remove_accounts() -> None:
    """Delete the system accounts benchmark platforms made (as root)."""
    import pwd

    for entry in pwd.getpwall():
        if entry.pw_name.startswith(ACCOUNT_PREFIX) and entry.pw_gecos.startswith("dsml user"):
            subprocess.run(["userdel", entry.pw_name], capture_output=True)


def progress(message: str) -> None:
    """Write one progress line to stderr (stdout is kept for the results)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Platform:
    """A running platform: its URL, data dir and the demo accounts' passwords."""

    url: str
    data_dir: Path
    users: dict[str, dict[str, str]]
    log: Path
    capacity: int

    @property
    def jupyter_path(self) -> Path:
        """The JUPYTER_PATH entry holding the curated kernelspecs (dsml-python-minimal, ...)."""
        return self.data_dir / "share" / "jupyter"

    @property
    def scheduler_db_url(self) -> str:
        """SQLAlchemy URL of the scheduler service's database."""
        return f"sqlite:///{self.data_dir / 'scheduler' / 'scheduler.sqlite'}"

    @property
    def workers_log(self) -> Path:
        """The local executor's log of every worker (timestamped lines)."""
        return self.data_dir / "scheduler" / "logs" / "workers.log"

    def user_token(self, name: str) -> str:
        """Log `name` in through the login form and ask the hub for an API token."""
        with httpx.Client(base_url=self.url, timeout=30) as client:
            client.get("/hub/login")
            r = client.post(
                "/hub/login",
                data={
                    "username": name,
                    "password": self.users[name]["password"],
                    "_xsrf": client.cookies.get("_xsrf"),
                },
            )
            if r.status_code != 302:
                raise RuntimeError(f"login as {name} failed: HTTP {r.status_code} {r.text[:200]}")
            r = client.post(
                f"/hub/api/users/{name}/tokens",
                json={"note": "bench"},
                headers={"X-XSRFToken": client.cookies.get("_xsrf") or ""},
            )
            if r.status_code != 201:
                raise RuntimeError(f"token for {name} refused: HTTP {r.status_code} {r.text[:200]}")
            return r.json()["token"]


def write_settings(
    path: Path,
    data_dir: Path,
    port: int,
    capacity: int,
    warm: int,
    extra: dict[str, Any] | None = None,
) -> Path:
    """A settings file for a benchmark platform (the test suite's, with our scheduler keys and
    `extra` merged over them)."""
    settings = {
        "hub": {"ip": "127.0.0.1", "port": port},
        "data_dir": str(data_dir),
        "environments_dir": str(ENV_CACHE),
        # the culler cannot be disabled today (the hub then refuses its role); keep it idle
        "culler": {"enabled": True, "timeout_seconds": 3600, "every_seconds": 600},
        "environments": ENVIRONMENTS,
        "scheduler": {"capacity": capacity, "warm_workers": warm},
        # as root each demo user gets a system account; these are deleted when the bench ends
        "accounts": {"prefix": ACCOUNT_PREFIX},
    }
    path.write_text(yaml.safe_dump(deep_merge(settings, extra or {})))
    return path


def _processes_under(folder: Path) -> list[int]:
    """Pids whose working directory is inside `folder` (what the platform left behind)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = Path(os.readlink(entry / "cwd"))
        except OSError:
            continue
        if cwd == folder or folder in cwd.parents:
            pids.append(int(entry.name))
    return pids


@contextlib.contextmanager
def running_platform(
    base: Path,
    capacity: int,
    warm_workers: int = 1,
    say: Progress = progress,
    settings: dict[str, Any] | None = None,
) -> Iterator[Platform]:
    """Run `dsml up --demo` in `base` until the block ends, also on error or Ctrl-C; `settings`
    are merged over the benchmark's own."""
    base.mkdir(parents=True, exist_ok=True)
    data_dir = base / "data"
    port = free_port()
    settings_file = write_settings(
        base / "settings.yaml", data_dir, port, capacity, warm_workers, settings
    )
    log = base / "dsml-up.log"
    say(f"starting the platform (scheduler capacity {capacity}) on port {port} in {base}")
    started = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dsml", "up", "--demo", "--settings", str(settings_file)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # our Ctrl-C does not reach it; we stop it in order
            cwd=base,
        )
    try:
        deadline = time.monotonic() + 240
        while "the platform is up" not in log.read_text():
            if proc.poll() is not None:
                raise RuntimeError(f"dsml up exited {proc.returncode}:\n{log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"dsml up not ready in 240 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        users = {u["name"]: u for u in json.loads((data_dir / "demo-users.json").read_text())}
        platform = Platform(
            url=f"http://127.0.0.1:{port}",
            data_dir=data_dir,
            users=users,
            log=log,
            capacity=capacity,
        )
        _wait_scheduler(platform)
        say(f"platform up in {time.monotonic() - started:.1f} s")
        yield platform
    finally:
        say("stopping the platform")
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in its terminal does
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for pid in _processes_under(data_dir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _wait_scheduler(platform: Platform, timeout: float = 60) -> None:
    """Wait until the scheduler service answers its health check through the proxy."""
    deadline = time.monotonic() + timeout
    url = platform.url + "/services/scheduler/api/health"
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=5).status_code == 200:
                return
        time.sleep(0.3)
    raise RuntimeError(f"the scheduler service did not answer {url} within {timeout:.0f} s")


def ensure_venv(name: str, requirement: str, say: Progress = progress) -> Path:
    """A virtualenv bench/.venvs/NAME with `requirement` installed; returns its python."""
    venv = VENVS / name
    python = venv / "bin" / "python"
    marker = venv / ".bench-requirement"
    if python.exists() and marker.exists() and marker.read_text() == requirement:
        return python
    say(f"installing {requirement} into {venv.relative_to(ROOT)} (its own virtualenv)")
    if not python.exists():
        subprocess.run(
            [str(UV), "venv", "--quiet", "--python", sys.executable, str(venv)], check=True
        )
    subprocess.run(
        [str(UV), "pip", "install", "--quiet", "--python", str(python), requirement], check=True
    )
    marker.write_text(requirement)
    return python


def installed_version(python: Path, distribution: str) -> str:
    """The version of `distribution` installed for `python`."""
    out = subprocess.run(
        [str(python), "-c", f"import importlib.metadata as m; print(m.version({distribution!r}))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def save_results(results: dict[str, Any], info: dict[str, Any], started: float, kind: str) -> Path:
    """Stamp `results` with the machine facts and the minutes since `started` (monotonic), save
    them as `bench/results/<UTC time>[-kind].json` and return the file."""
    info["minutes"] = round((time.monotonic() - started) / 60, 1)
    results["machine"] = info
    out_dir = BENCH / "results"
    out_dir.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out = out_dir / (f"{stamp}-{kind}.json" if kind else f"{stamp}.json")
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return out


def print_report(kind: str, info: dict[str, Any], lines: list[str], out: Path) -> None:
    """Print a benchmark's header (machine, revision, time taken), its lines and its raw file."""
    print(
        f"# dsml-platform {kind} benchmark, {info['date']}, rev {info['revision']}: {info['cpu']}, "
        f"{info['cores']} cores, {info['memory_gb']} GB, load at start {info['load_1min']}, "
        f"took {info['minutes']} min"
    )
    for line in lines:
        print(line)
    print(f"raw figures: {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")


def machine() -> dict[str, Any]:
    """Where the figures come from: CPU, cores, memory, load, Python, the repository revision."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        mem_kb = 0
    revision = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    # the code measured is the working tree: say when it differs from the commit
    changed = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--", "extensions", "hub_config"],
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    if revision and changed:
        revision += f" + uncommitted changes in {len(changed)} file(s)"
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "load_1min": round(os.getloadavg()[0], 2),
        "python": pyplatform.python_version(),
        "revision": revision or "unknown",
    }


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # so every `finally` stops what it started


def bench_main(
    kind: str,
    keep: bool,
    measure: Callable[[Path], dict[str, Any]],
    show: Callable[[dict[str, Any], dict[str, Any], Path], None],
    own_accounts: bool = True,
) -> int:
    """What every benchmark's main does around `measure(work folder)`; its exit code.

    Ctrl-C and SIGTERM stop what was started (130); the accounts benchmark platforms made are
    removed (unless `own_accounts` is False: a platform of somebody else's was measured) and the
    work folder with them unless `keep`. Then the figures are stamped, saved and `show`n.
    """
    signal.signal(signal.SIGTERM, _terminate)
    # a shell starting us in the background ignores SIGINT for us: take Ctrl-C back
    signal.signal(signal.SIGINT, signal.default_int_handler)
    info = machine()
    work = Path(tempfile.mkdtemp(prefix=f"dsml-bench-{kind}-" if kind else "dsml-bench-"))
    os.chmod(work, 0o711)  # as root, users' accounts pass through to their homes
    progress(f"working in {work}; {info['cores']} cores, load {info['load_1min']}")
    started = time.monotonic()
    try:
        results = measure(work)
    except KeyboardInterrupt:
        progress("interrupted: everything started has been stopped")
        return 130
    finally:
        if own_accounts:
            remove_accounts()
        if keep:
            progress(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    out = save_results(results, info, started, kind)
    show(results, info, out)
    return 0
