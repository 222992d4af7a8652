"""`dsml up`: start the whole platform on one machine and stop all of it on Ctrl-C.

It validates the settings, checks the data dir and the port, builds the curated environments
that are missing, starts JupyterHub (which starts the proxy, the services and, on demand, the
user servers), waits until the health endpoint answers, seeds the demo accounts, and then
supervises the hub until it exits or is asked to stop.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from dsml.cli import accounts
from dsml.cli.options import add_location_options, resolve
from dsml.client import HEALTH_PATH, HubClient, runtime_file
from dsml.datadir import DataDir
from dsml.environments import build as env_build
from dsml.environments import find_environment
from dsml.exceptions import DsmlError, HubError, PortInUseError, SettingsError
from dsml.hub.config import ADMIN_TOKEN_SECRET
from dsml.settings import platform_root


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register `dsml up`."""
    parser = sub.add_parser("up", help="run the platform (hub, proxy, services) until Ctrl-C")
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


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stable_port(datadir: DataDir, name: str) -> int:
    """A free port for `name`, the same as last time when it is still free.

    Workers of runs in flight find the scheduler again after a platform restart this way.
    """
    path = datadir.hub / "ports.json"
    try:
        ports = json.loads(path.read_text())
    except (OSError, ValueError):
        ports = {}
    port = ports.get(name)
    if port:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                port = None
    if not port:
        port = free_port()
        ports[name] = port
        path.write_text(json.dumps(ports) + "\n")
    return int(port)


def public_url(settings: dict[str, Any]) -> str:
    """The URL people open (with a connectable host when listening on every interface)."""
    ip = settings["hub"]["ip"]
    host = "127.0.0.1" if ip in ("0.0.0.0", "") else ("[::1]" if ip == "::" else ip)
    base = settings["hub"]["base_url"].rstrip("/")
    return f"http://{host}:{settings['hub']['port']}{base}"


def build_missing_environments(settings: dict[str, Any], datadir: DataDir) -> None:
    """Build every environment in the settings whose current lock is not built yet."""
    if settings["spawner"]["default_environment"] not in settings["environments"]:
        raise SettingsError(
            f"spawner.default_environment = {settings['spawner']['default_environment']} is "
            f"not allowed: expected one of environments ({', '.join(settings['environments'])})"
        )
    for name in settings["environments"]:
        env = find_environment(name)
        state = env_build.status(env, datadir)
        if state.state != "built":
            print(f"dsml up: building environment {name} ({state.state})", flush=True)
        env_build.build(env, datadir)


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
                r = await client.get(url + HEALTH_PATH)
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


def _kill_leftover_proxy(datadir: DataDir) -> None:
    """Stop a proxy a crashed hub left behind (its pid file outlives it)."""
    pid_file = datadir.hub / "proxy.pid"
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        pass
    pid_file.unlink(missing_ok=True)


def run(args: argparse.Namespace) -> int:
    """Carry out `dsml up`."""
    settings, datadir = resolve(args, hub__ip=args.ip, hub__port=args.port)
    datadir.ensure()
    check_port_free(settings["hub"]["ip"], settings["hub"]["port"])
    if args.build:
        build_missing_environments(settings, datadir)

    resolved = datadir.hub / "settings.json"
    resolved.write_text(json.dumps(settings, indent=2) + "\n")
    url = public_url(settings)
    env = dict(os.environ)
    env.update(
        DSML_SETTINGS_JSON=str(resolved),
        DSML_HUB_PORT=str(free_port()),
        DSML_PROXY_API_PORT=str(free_port()),
        DSML_SCHEDULER_PORT=str(stable_port(datadir, "scheduler")),
        DSML_PUBLIC_URL=url,
        DSML_ROOT=str(platform_root()),
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
    )
    config = platform_root() / "hub_config" / "jupyterhub_config.py"
    _kill_leftover_proxy(datadir)
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterhub", "-f", str(config)],
        cwd=datadir.hub,
        env=env,
        start_new_session=True,  # Ctrl-C reaches us; we stop the hub in order
    )
    stopping = False

    def _on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            print("\ndsml up: stopping the platform...", flush=True)
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        asyncio.run(wait_ready(url, proc, args.ready_timeout))
        runtime_file(datadir).write_text(json.dumps({"url": url, "pid": os.getpid()}) + "\n")
        token = datadir.secret(ADMIN_TOKEN_SECRET)
        if args.demo:
            asyncio.run(_seed(url, token, datadir))
        print(f"dsml up: the platform is up at {url}/", flush=True)
        if args.demo:
            print(f"dsml up: demo accounts and passwords: {datadir.demo_users} (mode 0600)")
        print("dsml up: press Ctrl-C to stop everything", flush=True)
        while proc.poll() is None:
            time.sleep(0.5)
        print(f"dsml up: JupyterHub exited with code {proc.returncode}", file=sys.stderr)
        return proc.returncode or 1
    except KeyboardInterrupt:
        code = _stop(proc)
        print(f"dsml up: stopped (hub exit code {code})", flush=True)
        return 0
    except DsmlError:
        _stop(proc)
        raise
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _stop(proc)
        _kill_leftover_proxy(datadir)
        runtime_file(datadir).unlink(missing_ok=True)


async def _seed(url: str, token: str, datadir: DataDir) -> None:
    async with HubClient(url, token) as hub:
        await accounts.seed_demo_users(hub, datadir.demo_users)
