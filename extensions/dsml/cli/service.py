"""`dsml status | down | systemd-unit`: the platform as a service, in the background or systemd.

`dsml status` reads what `dsml up` recorded under the data dir and asks the platform's health
endpoint (exit 0 up and healthy, 1 up but not healthy, 3 not running). `dsml down` stops a
platform started in the background (`dsml up --detach`) or in another terminal, and whatever a
`dsml up` that died left behind. `dsml systemd-unit` prints a unit that runs `dsml up` under
systemd, as The Littlest JupyterHub runs its hub.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import shutil
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from dsml.cli import processes
from dsml.cli.options import add_location_options, resolve
from dsml.datadir import ADMIN_TOKEN_SECRET, DataDir
from dsml.settings import default_settings_path, platform_root

EXIT_UNHEALTHY = 1
EXIT_NOT_RUNNING = 3


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register `dsml status`, `dsml down` and `dsml systemd-unit`."""
    status = sub.add_parser(
        "status", help="is the platform running, where, since when, and is it healthy"
    )
    add_location_options(status)
    status.add_argument("--json", action="store_true", help="print JSON")
    status.add_argument(
        "--timeout", type=float, default=15.0, help="seconds to wait for the health answer"
    )
    status.set_defaults(func=run_status)

    down = sub.add_parser("down", help="stop the platform running on the data dir")
    add_location_options(down)
    down.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="seconds to let `dsml up` stop everything before it is killed",
    )
    down.set_defaults(func=run_down)

    unit = sub.add_parser(
        "systemd-unit", help="print a systemd unit that runs `dsml up` as a system service"
    )
    add_location_options(unit)
    unit.add_argument(
        "--user-name",
        default=None,
        help="system account the service runs as (default: the one running this command)",
    )
    unit.set_defaults(func=run_systemd_unit)


def _since(record: dict[str, Any]) -> tuple[str | None, float | None]:
    """When `dsml up` started (ISO, UTC) and how many seconds ago."""
    started = record.get("started_at")
    if not started:
        return None, None
    try:
        seconds = (datetime.now(UTC) - datetime.fromisoformat(started)).total_seconds()
    except ValueError:
        return started, None
    return started, max(0.0, seconds)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def check_health(url: str, timeout: float, token: str | None = None) -> dict[str, Any]:
    """Ask the platform's health endpoint; {"healthy": bool, "status": code, "checks": {...}}.

    With the CLI's admin token (it holds the health-detail scope) the answer names each part.
    """
    headers = {"Authorization": f"token {token}"} if token else {}
    try:
        r = httpx.get(processes.health_url(url), headers=headers, timeout=timeout)
    except httpx.HTTPError as e:
        return {"healthy": False, "status": None, "error": str(e) or type(e).__name__}
    try:
        body = r.json()
    except ValueError:
        body = {}
    checks = body.get("checks", {}) if isinstance(body, dict) else {}
    return {"healthy": r.status_code == 200, "status": r.status_code, "checks": checks}


def platform_status(datadir: DataDir, timeout: float) -> dict[str, Any]:
    """What runs on `datadir`: state (up, unhealthy, starting, restarting, not running), URL,
    pids, health, and how often `dsml up` restarted a hub that died (`hub_restarts`)."""
    record = processes.read_record(datadir)
    status: dict[str, Any] = {"state": "not running", "data_dir": str(datadir.root)}
    if record is None:
        status["last_stop"] = processes.read_last_stop(datadir)
        return status
    entries = record["processes"]
    procs = {
        name: {**entry, "running": processes.is_alive(entry)}
        for name, entry in entries.items()
        if entry
    }
    started, seconds = _since(record)
    status.update(
        url=record.get("url"),
        since=started,
        uptime_seconds=None if seconds is None else round(seconds),
        log=record.get("log"),
        processes=procs,
        hub_restarts=int(record.get("hub_restarts", 0)),
    )
    if not procs.get(processes.SUPERVISOR, {}).get("running"):
        status["state"] = "not running"
        status["left_behind"] = [t.label for t in processes.find_targets(datadir, record)]
        return status
    if record.get("state") != "up":
        # the hub died and dsml up is starting it again, or the first start is under way
        status["state"] = "restarting" if record.get("state") == "restarting" else "starting"
        return status
    try:
        token: str | None = (datadir.secrets / ADMIN_TOKEN_SECRET).read_text().strip()
    except OSError:
        token = None  # another account's platform: the status without the detail
    health = check_health(record["url"], timeout, token)
    status["health"] = health
    status["state"] = "up" if health["healthy"] else "unhealthy"
    return status


def _print_status(status: dict[str, Any]) -> None:
    state = status["state"]
    if state == "not running":
        print(f"dsml: not running (data dir {status['data_dir']})")
        stop = status.get("last_stop")
        if stop:
            print(f"  last stop {stop['at']}: {stop['reason']}")
            if stop.get("log"):
                print(f"  log       {stop['log']}")
        if status.get("left_behind"):
            pid = status["processes"][processes.SUPERVISOR]["pid"]
            print(
                f"  its dsml up (pid {pid}) died and left running: "
                f"{', '.join(status['left_behind'])}; `dsml down` stops them"
            )
        return
    words = {
        "up": "healthy",
        "unhealthy": "NOT healthy",
        "starting": "starting",
        "restarting": "the hub died; restarting it",
    }[state]
    print(f"dsml: running at {status['url']}/ ({words})")
    print(f"  since     {status['since']} ({_duration(status['uptime_seconds'])} ago)")
    if status.get("hub_restarts"):
        print(f"  restarts  the hub was restarted {status['hub_restarts']} time(s) after dying")
    for name, p in status["processes"].items():
        alive = "running" if p["running"] else "GONE"
        print(f"  {name:<9} pid {p['pid']:<8} {alive}")
    print(f"  data dir  {status['data_dir']}")
    if status.get("log"):
        print(f"  log       {status['log']}")
    health = status.get("health")
    if health and not health["healthy"]:
        if health.get("error"):
            print(f"  health    no answer: {health['error']}")
        else:
            print(f"  health    HTTP {health['status']}")
        for name, result in health.get("checks", {}).items():
            if result != "ok":
                print(f"    {name}: {result}")


def run_status(args: argparse.Namespace) -> int:
    """Carry out `dsml status`."""
    _, datadir = resolve(args)
    status = platform_status(datadir, args.timeout)
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        _print_status(status)
    if status["state"] == "not running":
        return EXIT_NOT_RUNNING
    return 0 if status["state"] == "up" else EXIT_UNHEALTHY


def _say_down(message: str) -> None:
    print(f"dsml down: {message}", flush=True)


def run_down(args: argparse.Namespace) -> int:
    """Carry out `dsml down`: SIGTERM to `dsml up`, wait, then stop whatever is left."""
    _, datadir = resolve(args)
    record = processes.running_supervisor(datadir)
    if record is None:
        recorded = processes.read_record(datadir) is not None
        if not processes.stop_left_behind(datadir, _say_down) and not recorded:
            _say_down(f"no platform is running on {datadir.root}; nothing to stop")
        return 0
    url = record.get("url")
    up = record["processes"][processes.SUPERVISOR]
    target = processes.Target(up["pid"], up["start_time"], f"dsml up (pid {up['pid']})")
    _say_down(f"stopping the platform at {url}/ (dsml up pid {up['pid']})...")
    target.signal(signal.SIGTERM)
    deadline = time.monotonic() + args.timeout
    while target.alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    if target.alive():
        _say_down(f"dsml up did not stop within {args.timeout:.0f} s; killing it")
        target.signal(signal.SIGKILL)  # its hub gets SIGTERM from the kernel then
        while target.alive():
            time.sleep(0.1)
    left = processes.stop_targets(processes.find_targets(datadir, record))
    processes.clear_record(datadir)
    message = f"stopped the platform at {url}/ (dsml up pid {up['pid']} and what it started)"
    if left:
        message += f"; then what it left running: {processes.summary(left)}"
    _say_down(message)
    return 0


def _quote(arg: str) -> str:
    """One argument of a systemd command line (quoted when it holds blanks or quotes)."""
    if arg and not any(c in arg for c in " \t\"'\\;$%"):
        return arg
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    return f'"{escaped}"'


def systemd_unit(datadir: DataDir, settings_file: Path, user: str) -> str:
    """A systemd service unit that runs `dsml up` on this checkout (no --detach: systemd watches).

    KillMode=mixed: `systemctl stop` sends SIGTERM to `dsml up` alone, which stops the hub and
    everything it started in order; what still runs after TimeoutStopSec gets SIGKILL.
    """
    bindir = Path(sys.executable).parent
    dsml = bindir / "dsml"
    command = [str(dsml)] if dsml.exists() else [sys.executable, "-m", "dsml"]
    command += ["up", "--data-dir", str(datadir.root), "--settings", str(settings_file)]
    node = shutil.which("node")
    path = [str(bindir)] + ([str(Path(node).parent)] if node else [])
    path += ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
    path = list(dict.fromkeys(path))
    root = platform_root()
    lines = [
        f"# dsml-platform as a system service: made by `dsml systemd-unit` for {root}",
        "# install: dsml systemd-unit [...] > /etc/systemd/system/dsml-platform.service",
        "#          systemctl daemon-reload && systemctl enable --now dsml-platform",
        "# then:    dsml status; journalctl -u dsml-platform; systemctl stop dsml-platform",
        "[Unit]",
        "Description=dsml-platform (JupyterHub, proxy and services)",
        "After=network-online.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        "Type=simple",
        f"User={user}",
        f"WorkingDirectory={root}",
        f"Environment={_quote('PATH=' + os.pathsep.join(path))}",
        "Environment=PYTHONUNBUFFERED=1",
        f"ExecStart={' '.join(_quote(a) for a in command)}",
        "# SIGTERM to dsml up only; it stops the hub, proxy, services and user servers",
        "KillMode=mixed",
        "KillSignal=SIGTERM",
        "TimeoutStopSec=90",
        "Restart=on-failure",
        "RestartSec=5",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
    ]
    return "\n".join(lines) + "\n"


def run_systemd_unit(args: argparse.Namespace) -> int:
    """Carry out `dsml systemd-unit`: print the unit on stdout."""
    _, datadir = resolve(args)
    settings_file = Path(args.settings).resolve() if args.settings else default_settings_path()
    print(systemd_unit(datadir, settings_file, args.user_name or getpass.getuser()), end="")
    return 0
