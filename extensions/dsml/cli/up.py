"""`dsml up`: start the whole platform on one machine and stop all of it on Ctrl-C.

It validates the settings, checks the data dir and the port, stops a platform an earlier
`dsml up` on the same data dir left behind, builds the curated environments that are missing,
starts JupyterHub (which starts the proxy, the services and, on demand, the user servers), waits
until the health endpoint answers, seeds the demo accounts, and then supervises the hub until it
is asked to stop: Ctrl-C, SIGTERM and SIGHUP (the terminal closing) all stop everything.

A hub that dies unasked (`kill -9`, the OOM killer, a crash: any exit but 0) is started again,
at most `--max-restarts` times in `--restart-window` seconds, after which `dsml up` gives up,
stops everything and says so. Before a restart it kills the managed services the dead hub left
(they hold their ports); user servers and app servers run on and the new hub adopts them (it
polls each spawner recorded in its database), the proxy the dead hub left is replaced by the new
hub (through its pid file) and given every route again, and the scheduler's workers of runs in
flight report to the new scheduler, found at the same port (`choose_ports`): the hub, proxy API,
scheduler, portal and apps ports stay the same across restarts. A hub that exits with 0 was
asked to (SIGTERM, the shutdown API): `dsml up` stops too. The hub itself restarts a proxy that
dies (it checks every 5 s) and puts the routes back.
If `dsml up` itself is killed, the hub gets SIGTERM from the kernel (a parent-death signal) and
stops what it started; what it records in `<data dir>/hub/processes.json` lets the next
`dsml up`, `dsml status` and `dsml down` find the rest (see `dsml.cli.processes`).
With `--detach` it starts itself in the background and returns once the platform is up.

As root, each user gets a system account of their own (made by the hub, `dsml.hub.accounts`)
that runs their server and their scheduled runs; `dsml up` then checks that such an account can
reach the interpreter, the curated environments and the homes, and refuses in one line naming
the path when not. Not as root, everything runs as one account, and `dsml up` says so. The
platform's own state is written with umask 077: secrets, databases, settings and logs are
private to the platform's account.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from dsml.cli import accounts, processes
from dsml.cli.options import add_location_options, resolve
from dsml.client import HubClient, runtime_file
from dsml.datadir import ADMIN_TOKEN_SECRET, DataDir
from dsml.environments import build as env_build
from dsml.environments import find_environment
from dsml.exceptions import DataDirError, HubError, PortInUseError, SettingsError
from dsml.settings import platform_root
from dsml.system_accounts import closed_to_others, isolated
from dsml.utils import write_atomic


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register `dsml up`."""
    parser = sub.add_parser(
        "up", help="run the platform (hub, proxy, services) until Ctrl-C, SIGTERM or SIGHUP"
    )
    add_location_options(parser)
    parser.add_argument("--ip", default=None, help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="public port (default 8000)")
    parser.add_argument(
        "--demo",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="create one demo account per group (passwords in <data-dir>/demo-users.json)",
    )
    parser.add_argument(
        "--build",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="build missing curated environments before starting",
    )
    parser.add_argument(
        "--ready-timeout", type=float, default=120.0, help="seconds to wait for the hub to answer"
    )
    parser.add_argument(
        "--max-restarts",
        type=int,
        default=5,
        help="restarts of a hub that died unasked allowed within --restart-window (0: none)",
    )
    parser.add_argument(
        "--restart-window",
        type=float,
        default=600.0,
        help="seconds over which --max-restarts counts",
    )
    parser.add_argument(
        "--detach",
        action="store_true",
        help="run in the background (log: <data-dir>/logs/dsml-up.log); return once it is up",
    )
    parser.set_defaults(func=run)


def check_port_free(ip: str, port: int) -> None:
    """Raise PortInUseError if something already listens on ip:port."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((ip, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise PortInUseError(
                    f"port {port} on {ip} is taken by another process; stop it or pass --port"
                ) from None
            if e.errno == errno.EADDRNOTAVAIL:
                raise SettingsError(f"hub.ip = {ip} is not an address of this machine") from None
            raise PortInUseError(f"cannot listen on {ip}:{port}: {e.strerror}") from None


STABLE_PORTS = ("scheduler", "portal", "apps")
"""The services found at the same port after a platform restart (`choose_ports`)."""


def choose_ports(datadir: DataDir, public_port: int) -> dict[str, int]:
    """Distinct free loopback ports for the hub, the proxy's API and the managed services.

    The scheduler, portal and apps service get the port they had last time when it is still
    free: workers of runs in flight and app servers find them again after a restart. Every port
    is held open until all are chosen, and none is the public port (not listened on yet): two
    ports drawn one after another may otherwise be the same, and a service at the public port
    makes the proxy route to itself.
    """
    path = datadir.hub / "ports.json"
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        stored = {}
    held: list[socket.socket] = []
    chosen: dict[str, int] = {}

    def hold(port: int) -> int | None:
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            s.close()
            return None
        held.append(s)
        return s.getsockname()[1]

    try:
        for name in (*STABLE_PORTS, "hub", "proxy_api"):
            port = stored.get(name) if name in STABLE_PORTS else None
            if isinstance(port, int) and port != public_port:
                port = hold(port)
            else:
                port = None
            while port is None or port == public_port:
                port = hold(0)
            chosen[name] = port
    finally:
        for s in held:
            s.close()
    remembered = {name: chosen[name] for name in STABLE_PORTS}
    if remembered != {name: stored.get(name) for name in STABLE_PORTS}:
        path.write_text(json.dumps(remembered) + "\n")
    return chosen


def public_url(settings: dict[str, Any]) -> str:
    """The URL people open (with a connectable host when listening on every interface)."""
    ip = settings["hub"]["ip"]
    host = "127.0.0.1" if ip in ("0.0.0.0", "") else ("[::1]" if ip == "::" else ip)
    base = settings["hub"]["base_url"].rstrip("/")
    return f"http://{host}:{settings['hub']['port']}{base}"


def build_missing_environments(settings: dict[str, Any], datadir: DataDir) -> None:
    """Build every environment in the settings whose current lock is not built yet.

    As root, an environment built from an interpreter user accounts cannot run is built again.
    """
    if settings["spawner"]["default_environment"] not in settings["environments"]:
        raise SettingsError(
            f"spawner.default_environment = {settings['spawner']['default_environment']} is "
            f"not allowed: expected one of environments ({', '.join(settings['environments'])})"
        )
    for name in settings["environments"]:
        env = find_environment(name)
        state = env_build.status(env, datadir)
        force = False
        if state.state != "built":
            print(f"dsml up: building environment {name} ({state.state})", flush=True)
        elif isolated() and _closed_python(state.prefix):
            print(
                f"dsml up: building environment {name} again: user accounts cannot run "
                f"{_closed_python(state.prefix)}",
                flush=True,
            )
            force = True
        env_build.build(env, datadir, force=force)


def _closed_python(prefix: Path) -> str | None:
    """What on the way to an environment's interpreter other accounts cannot pass, if any."""
    return closed_to_others(prefix / "bin" / "python", execute=True)


def check_reachable(settings: dict[str, Any], datadir: DataDir) -> None:
    """Raise DataDirError naming the first path a user account could not reach.

    User accounts run the platform's Python (their servers, the scheduler's workers), the
    curated environments' interpreters (kernels), the source tree, and live in their homes.
    """
    bin_dir = Path(sys.executable).parent
    needed: list[tuple[Path, bool, str]] = [
        (Path(sys.executable), True, "the platform's Python"),
        (bin_dir / "jupyterhub-singleuser", True, "the JupyterLab server command"),
        (platform_root() / "extensions" / "dsml" / "__init__.py", False, "the dsml package"),
        (datadir.homes, False, "the users' homes"),
        (datadir.kernels, False, "the curated kernelspecs"),
    ]
    for name in settings["environments"]:
        prefix = env_build.prefix_for(find_environment(name), datadir)
        needed.append((prefix / "bin" / "python", True, f"environment {name}"))
    for path, execute, what in needed:
        closed = closed_to_others(path, execute=execute)
        if closed:
            raise DataDirError(
                f"user accounts cannot reach {closed} ({what}, at {path}); give other "
                "accounts x on its folders (and r/x on the file), or run from a place they "
                "can reach (`make bootstrap` as root builds .venv from /usr/bin/python3.11)"
            )


async def wait_ready(url: str, proc: subprocess.Popen, timeout: float) -> None:
    """Poll the health endpoint until it answers 200; fail if the hub exits first."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    async with httpx.AsyncClient(timeout=5) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise HubError(
                    f"JupyterHub exited with code {proc.returncode} before it was ready; "
                    "see its log above"
                )
            try:
                r = await client.get(processes.health_url(url))
                if r.status_code == 200:
                    return
                last = f"HTTP {r.status_code}: {r.text[:200]}"
            except httpx.HTTPError as e:
                last = str(e) or type(e).__name__
            await asyncio.sleep(0.25)
    raise HubError(f"the hub did not become healthy within {timeout:.0f} s ({last})")


def _stop(proc: subprocess.Popen, grace: float = 30.0) -> int:
    """Ask the hub to shut down (it stops the proxy, services and user servers), then wait."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode


PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _die_with_parent() -> Callable[[], None]:
    """A Popen preexec_fn: the child gets SIGTERM when we die, even by `kill -9`.

    SIGTERM (not SIGKILL) so that the hub shuts down as on Ctrl-C and stops the proxy, the
    services and the user servers it started.
    """
    parent = os.getpid()
    libc = ctypes.CDLL(None, use_errno=True)  # loaded before the fork, not in the child

    def preexec() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # we died before the prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def say(message: str, err: bool = False) -> None:
    """Print one line; a terminal that is gone (SIGHUP) must not stop the shutdown."""
    try:
        print(message, file=sys.stderr if err else sys.stdout, flush=True)
    except OSError:
        pass


def _say_up(message: str) -> None:
    say(f"dsml up: {message}")


def _record_proxy(datadir: DataDir, record: dict[str, Any]) -> None:
    """Add the proxy the hub started to the record, when its pid file names it."""
    try:
        pid = int((datadir.hub / "proxy.pid").read_text().strip())
    except (OSError, ValueError):
        return
    entry = processes.describe(pid)
    if entry is not None and "configurable-http-proxy" in processes.command_line(pid):
        record["processes"][processes.PROXY] = entry


def _forwarded(args: argparse.Namespace, datadir: DataDir) -> list[str]:
    """The arguments of this `dsml up`, for the copy `--detach` starts in the background."""
    out = ["--data-dir", str(datadir.root)]
    if args.settings:
        out += ["--settings", str(Path(args.settings).resolve())]
    if args.ip is not None:
        out += ["--ip", args.ip]
    if args.port is not None:
        out += ["--port", str(args.port)]
    out += ["--demo" if args.demo else "--no-demo", "--build" if args.build else "--no-build"]
    out += ["--max-restarts", str(args.max_restarts), "--restart-window", str(args.restart_window)]
    return out + ["--ready-timeout", str(args.ready_timeout)]


def detach(args: argparse.Namespace, datadir: DataDir, url: str) -> int:
    """Start `dsml up` in a session of its own and return once its platform is up.

    Its output goes to `<data dir>/logs/dsml-up.log`; if it exits before the platform is up,
    raise HubError with the end of that log.
    """
    log = datadir.logs / "dsml-up.log"
    cmd = [sys.executable, "-m", "dsml", "up", *_forwarded(args, datadir)]
    with open(log, "a") as out:
        out.write(f"\n=== {datetime.now().isoformat(timespec='seconds')} {' '.join(cmd)}\n")
        out.flush()
        offset = out.tell()
        child = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _say_up(f"starting in the background (pid {child.pid}, log {log})")
    try:
        while True:
            record = processes.read_record(datadir) or {"processes": {}}
            me = record["processes"].get(processes.SUPERVISOR) or {}
            if me.get("pid") == child.pid and record.get("state") == "up":
                break
            if child.poll() is not None:
                with open(log) as f:
                    f.seek(offset)
                    tail = "\n".join(f.read().splitlines()[-30:])
                raise HubError(
                    f"the platform did not come up: dsml up exited with code {child.returncode}; "
                    f"the end of {log}:\n{tail}"
                )
            time.sleep(0.3)
    except KeyboardInterrupt:
        child.terminate()  # it stops what it started so far
        child.wait(60)
        raise
    _say_up(f"the platform is up at {url}/ (pid {child.pid}, log {log})")
    if args.demo:
        _say_up(f"demo accounts and passwords: {datadir.demo_users} (mode 0600)")
    _say_up("`dsml status` tells how it is, `dsml down` stops it")
    return 0


def run(args: argparse.Namespace) -> int:
    """Carry out `dsml up`."""
    # the platform's own files (secrets, databases, settings, logs) are for its account alone
    os.umask(0o077)
    settings, datadir = resolve(args, hub__ip=args.ip, hub__port=args.port)
    datadir.ensure()
    running = processes.running_supervisor(datadir)
    if running:
        pid = running["processes"][processes.SUPERVISOR]["pid"]
        raise DataDirError(
            f"a platform is running on data dir {datadir.root} already (dsml up pid {pid}, "
            f"{running.get('url')}); stop it with `dsml down --data-dir {datadir.root}` "
            "or pass another --data-dir"
        )
    processes.stop_left_behind(datadir, _say_up)
    check_port_free(settings["hub"]["ip"], settings["hub"]["port"])
    url = public_url(settings)
    if args.detach:
        return detach(args, datadir, url)
    if args.build:
        build_missing_environments(settings, datadir)
    if isolated():
        check_reachable(settings, datadir)
    else:
        import getpass

        _say_up(
            f"not running as root: every user's server and jobs run as this account "
            f"({getpass.getuser()}), so users are not isolated from each other; run `dsml up` "
            "as root for an account per user, or use the Kubernetes mode"
        )

    resolved = datadir.hub / "settings.json"
    write_atomic(resolved, json.dumps(settings, indent=2) + "\n", mode=0o600)
    # what user servers need of the settings (`dsml check`), without the SSO client secret
    lab_settings = json.loads(json.dumps(settings))
    lab_settings["auth"]["oauth_config"] = {}
    write_atomic(datadir.lab_settings, json.dumps(lab_settings, indent=2) + "\n", mode=0o644)
    ports = choose_ports(datadir, settings["hub"]["port"])
    env = dict(os.environ)
    env.update(
        DSML_SETTINGS_JSON=str(resolved),
        DSML_LAB_SETTINGS_JSON=str(datadir.lab_settings),
        DSML_HUB_PORT=str(ports["hub"]),
        DSML_PROXY_API_PORT=str(ports["proxy_api"]),
        DSML_SCHEDULER_PORT=str(ports["scheduler"]),
        DSML_PORTAL_PORT=str(ports["portal"]),
        # app servers report views to the apps service at this port, across hub restarts too
        DSML_APPS_PORT=str(ports["apps"]),
        DSML_PUBLIC_URL=url,
        DSML_ROOT=str(platform_root()),
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
    )
    record = processes.new_record(datadir, url)
    processes.write_record(datadir, record)
    hub = Supervised(datadir, record, env, url)
    hub.start()
    stopping = False

    def _on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            say(f"\ndsml up: {signal.Signals(signum).name}: stopping the platform...")
            raise KeyboardInterrupt

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _on_signal)
    ended = "it stopped before the hub was up"
    try:
        asyncio.run(wait_ready(url, hub.proc, args.ready_timeout))
        runtime_file(datadir).write_text(json.dumps({"url": url, "pid": os.getpid()}) + "\n")
        token = datadir.secret(ADMIN_TOKEN_SECRET)
        if args.demo:
            asyncio.run(_seed(url, token, datadir))
        hub.mark_up()
        _say_up(f"the platform is up at {url}/")
        if args.demo:
            _say_up(f"demo accounts and passwords: {datadir.demo_users} (mode 0600)")
        _say_up("press Ctrl-C to stop everything")
        budget = RestartBudget(args.max_restarts, args.restart_window)
        while True:
            code: int | None = hub.watch()
            if code == 0:
                ended = "JupyterHub exited with code 0 (asked to stop: the shutdown API)"
                say(f"dsml up: {ended}", err=True)
                return 1
            while code is not None:  # until a restarted hub is up
                if not budget.allow():
                    ended = (
                        f"gave up: JupyterHub {exit_reason(code)} and the {budget.limit} "
                        f"restarts allowed within {budget.window:.0f} s were used up "
                        "(--max-restarts, --restart-window)"
                    )
                    say(
                        f"dsml up: {ended}; stopping the platform, see the hub's log above",
                        err=True,
                    )
                    return code if code > 0 else 1
                say(
                    f"dsml up: JupyterHub {exit_reason(code)}; restarting it (restart "
                    f"{budget.used} of at most {budget.limit} in {budget.window:.0f} s)",
                    err=True,
                )
                code = hub.restart(args.ready_timeout)
    except KeyboardInterrupt:
        ended = "stopped as asked (Ctrl-C, SIGTERM, SIGHUP or `dsml down`)"
        code = _stop(hub.proc)
        _say_up(f"stopped (hub exit code {code})")
        return 0
    except Exception as e:
        ended = f"failed: {e}"
        raise
    finally:
        stopping = True
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
        _stop(hub.proc)
        left = processes.stop_targets(processes.find_targets(datadir, record))
        if left:
            _say_up(f"stopped what the hub left running: {processes.summary(left)}")
        (datadir.hub / "proxy.pid").unlink(missing_ok=True)
        runtime_file(datadir).unlink(missing_ok=True)
        processes.write_last_stop(datadir, record, ended)
        processes.clear_record(datadir)


def exit_reason(code: int) -> str:
    """How a process ended, from its Popen return code: 'was killed by SIGKILL', ..."""
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class RestartBudget:
    """At most `limit` restarts within any `window` seconds."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._times: list[float] = []

    @property
    def used(self) -> int:
        """Restarts within the window that ends now."""
        now = time.monotonic()
        self._times = [t for t in self._times if now - t < self.window]
        return len(self._times)

    def allow(self) -> bool:
        """Take one restart if the window has room for it."""
        if self.used >= self.limit:
            return False
        self._times.append(time.monotonic())
        return True


class Supervised:
    """The hub `dsml up` runs: started, watched, restarted, recorded in the process record."""

    def __init__(
        self, datadir: DataDir, record: dict[str, Any], env: dict[str, str], url: str
    ) -> None:
        self.datadir = datadir
        self.record = record
        # the same environment every time: same hub, proxy API and service ports, so user
        # servers and workers that outlive a hub find the next one where they found this one
        self.env = env
        self.url = url
        self.proc: subprocess.Popen = None  # type: ignore[assignment]  # set by start()

    def start(self) -> None:
        """Start JupyterHub and record it."""
        config = platform_root() / "hub_config" / "jupyterhub_config.py"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(config)],
            cwd=self.datadir.hub,
            env=self.env,
            start_new_session=True,  # Ctrl-C reaches us; we stop the hub in order
            preexec_fn=_die_with_parent(),
        )
        self.record["processes"][processes.HUB] = processes.describe(self.proc.pid)
        processes.write_record(self.datadir, self.record)

    def mark_up(self) -> None:
        """Record the proxy the hub started and that the platform is up."""
        _record_proxy(self.datadir, self.record)
        self.record["state"] = "up"
        processes.write_record(self.datadir, self.record)

    def watch(self) -> int:
        """Wait until the hub exits; return its code. Keeps the proxy's record current."""
        next_look = time.monotonic() + 5
        while self.proc.poll() is None:
            time.sleep(0.5)
            if time.monotonic() > next_look:
                next_look = time.monotonic() + 5
                self._follow_proxy()
        return self.proc.returncode

    def _follow_proxy(self) -> None:
        """The hub restarts a proxy that died: record the new one (`dsml status`, `dsml down`)."""
        entry = self.record["processes"].get(processes.PROXY)
        if not processes.is_alive(entry):
            before = entry
            _record_proxy(self.datadir, self.record)
            if self.record["processes"].get(processes.PROXY) != before:
                processes.write_record(self.datadir, self.record)

    def restart(self, ready_timeout: float) -> int | None:
        """Start the hub again after it died: kill the services it left, start, wait until up.

        Returns None once the platform is up again; else the new hub's exit code (non-zero:
        it died again, or it was stopped after `ready_timeout` seconds), another death for the
        caller's budget.
        """
        began = time.monotonic()
        dead = self.record["processes"].get(processes.HUB) or {}
        self.record["state"] = "restarting"
        processes.write_record(self.datadir, self.record)
        hub_url = f"http://127.0.0.1:{self.env['DSML_HUB_PORT']}"
        left = processes.kill_targets(
            processes.services_of_hub(hub_url, since=int(dead.get("start_time") or 0))
        )
        if left:
            _say_up(f"killed the services the dead hub left: {processes.summary(left, shown=5)}")
        self.start()
        try:
            asyncio.run(wait_ready(self.url, self.proc, ready_timeout))
        except HubError as e:
            say(f"dsml up: the restarted hub did not come up: {e}", err=True)
            return _stop(self.proc) or 1
        self.record["hub_restarts"] = int(self.record.get("hub_restarts", 0)) + 1
        self.mark_up()
        _say_up(f"the platform is back after {time.monotonic() - began:.1f} s at {self.url}/")
        return None


async def _seed(url: str, token: str, datadir: DataDir) -> None:
    async with HubClient(url, token) as hub:
        await accounts.seed_demo_users(hub, datadir.demo_users)
