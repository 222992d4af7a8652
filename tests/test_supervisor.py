"""`dsml up` stops what it starts: on SIGHUP, after `kill -9`, in the background, under systemd.

Each test that kills things runs its own platform in tmp_path; what is left under tmp_path at
the end is killed (and, where the test is about it, asserted absent before that).
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from test_restart import form_login

from dsml.cli.processes import process_info
from dsml.cli.up import check_port_free, choose_ports

from conftest import (
    DSML,
    ROOT,
    DataDir,
    Platform,
    _processes_under,
    free_port,
    running_platform,
    write_settings,
)

DSML_BIN = Path(sys.executable).parent / "dsml"


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie no longer counts)."""
    return process_info(pid) is not None


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> None:
    """Poll `condition` until it holds; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.2)


def argv(pid: int) -> list[str]:
    """The command line of a process as a list ([] when it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    except OSError:
        return []


def port_is_free(port: int) -> bool:
    """True when the platform's port can be bound again."""
    try:
        check_port_free("127.0.0.1", port)
    except Exception:  # noqa: BLE001 - any refusal means taken
        return False
    return True


def record(data: Path) -> dict:
    """What `dsml up` recorded about the processes it runs."""
    return json.loads((data / "hub" / "processes.json").read_text())


def start_in_terminal_session(base: Path, settings: Path) -> tuple[subprocess.Popen, Path]:
    """Start `dsml up --demo` as a terminal starts a shell: the leader of a new session.

    Closing a terminal sends SIGHUP to the process group of the shell in it.
    """
    base.mkdir(parents=True, exist_ok=True)
    log = base / "dsml-up.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            ["bash", "-c", f"exec {DSML_BIN} up --demo --settings {settings}"],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=base,
        )
    deadline = time.monotonic() + 180
    while "the platform is up" not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"dsml up did not come up:\n{log.read_text()[-3000:]}")
        time.sleep(0.3)
    return proc, log


@pytest.fixture
def reaper(tmp_path: Path) -> Iterator[None]:
    """Kill whatever a failed test left running under tmp_path."""
    yield
    for pid in _processes_under(tmp_path):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_sighup_from_a_closing_terminal_stops_everything(
    env_datadir: DataDir, tmp_path: Path, reaper: None
) -> None:
    port, data = free_port(), tmp_path / "data"
    settings = write_settings(tmp_path / "settings.yaml", data, port)
    proc, log = start_in_terminal_session(tmp_path / "terminal", settings)
    proxy = int((data / "hub" / "proxy.pid").read_text())
    running = _processes_under(data)
    assert len(running) >= 4, running  # hub, proxy, scheduler, culler, workers, kernels

    os.killpg(proc.pid, signal.SIGHUP)  # the terminal closes

    assert proc.wait(90) == 0, log.read_text()[-3000:]
    assert "SIGHUP: stopping the platform" in log.read_text()
    assert _processes_under(data) == []
    assert not alive(proxy)
    assert port_is_free(port)
    assert not (data / "hub" / "processes.json").exists()


def test_after_kill_9_nothing_outlives_dsml_up_and_the_next_up_comes_up(
    env_datadir: DataDir, tmp_path: Path, reaper: None
) -> None:
    port, data = free_port(), tmp_path / "data"
    settings = write_settings(tmp_path / "settings.yaml", data, port)

    # kill -9 of dsml up alone: the hub gets SIGTERM from the kernel and stops what it started
    first, _ = start_in_terminal_session(tmp_path / "first", settings)
    hub = record(data)["processes"]["hub"]["pid"]
    first.kill()
    first.wait()
    wait_until(lambda: not alive(hub), 60, f"the hub (pid {hub}) stops after its dsml up died")
    wait_until(lambda: not _processes_under(data), 30, "nothing runs under the data dir")
    assert port_is_free(port)

    # kill -9 of the hub and dsml up together (say, the OOM killer) leaves the proxy, the
    # services, their workers and kernels running: the next dsml up stops them, and says so
    second, log = start_in_terminal_session(tmp_path / "second", settings)
    assert f"dsml up pid {first.pid} on {data} had died" in log.read_text()
    recorded = record(data)["processes"]
    # frozen first: a dsml up that saw its hub die would restart it (it restarts a dead hub)
    os.kill(second.pid, signal.SIGSTOP)
    os.kill(recorded["hub"]["pid"], signal.SIGKILL)
    second.kill()
    second.wait()
    proxy = recorded["proxy"]["pid"]
    left = _processes_under(data)
    assert alive(proxy) and len(left) >= 3, left
    assert not port_is_free(port)

    with running_platform(tmp_path / "third", data, port) as third:
        said = [line for line in third.log.read_text().splitlines() if "left behind" in line]
        assert len(said) == 1, third.log.read_text()[-3000:]
        assert said[0].startswith(
            f"dsml up: stopped the platform left behind on {data} by dsml up pid {second.pid}, "
            f"which had died: proxy (pid {proxy}), "
        )
        assert not alive(proxy)
        assert not set(left) & set(_processes_under(data))
        for name in ("analyst", "stakeholder"):
            session = form_login(third.url, name, third.password(name))
            assert session.get("/hub/api/user").json()["name"] == name


def run_dsml(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run one `dsml` command to its end."""
    return subprocess.run(DSML + list(args), capture_output=True, text=True, timeout=timeout)


def test_detach_status_down(env_datadir: DataDir, tmp_path: Path, reaper: None) -> None:
    port, data = free_port(), tmp_path / "data"
    settings = str(write_settings(tmp_path / "settings.yaml", data, port))
    url = f"http://127.0.0.1:{port}"
    log = data / "logs" / "dsml-up.log"

    up = run_dsml("up", "--detach", "--demo", "--settings", settings, timeout=300)
    assert up.returncode == 0, up.stdout + up.stderr
    assert f"the platform is up at {url}/" in up.stdout
    assert str(log) in up.stdout
    pid = record(data)["processes"]["dsml-up"]["pid"]
    assert alive(pid)  # it runs on after the command returned
    assert httpx.get(url + "/hub/login", timeout=10).status_code == 200

    status = run_dsml("status", "--settings", settings)
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"running at {url}/ (healthy)" in status.stdout
    assert f"pid {pid}" in status.stdout and str(log) in status.stdout
    as_json = run_dsml("status", "--settings", settings, "--json")
    assert as_json.returncode == 0
    state = json.loads(as_json.stdout)
    assert state["state"] == "up" and state["url"] == url and state["health"]["healthy"]
    assert state["processes"]["dsml-up"] == {**state["processes"]["dsml-up"], "pid": pid}
    assert all(p["running"] for p in state["processes"].values())
    assert state["since"] and state["uptime_seconds"] >= 0

    # a second dsml up on that data dir is refused, in one line
    second = run_dsml("up", "--no-build", "--settings", settings)
    assert second.returncode == 2
    assert second.stderr.strip() == (
        f"dsml up: error: a platform is running on data dir {data} already (dsml up pid {pid}, "
        f"{url}); stop it with `dsml down --data-dir {data}` or pass another --data-dir"
    )

    # a service that stops answering makes the platform unhealthy: exit 1
    scheduler = next(p for p in _processes_under(data) if argv(p)[1:3] == ["-m", "dsml.scheduler"])
    os.kill(scheduler, signal.SIGSTOP)
    try:
        status = run_dsml("status", "--settings", settings, "--timeout", "30")
    finally:
        os.kill(scheduler, signal.SIGCONT)
    assert status.returncode == 1, status.stdout + status.stderr
    assert "NOT healthy" in status.stdout and "service:scheduler" in status.stdout

    down = run_dsml("down", "--settings", settings)
    assert down.returncode == 0, down.stdout + down.stderr
    assert f"stopped the platform at {url}/ (dsml up pid {pid}" in down.stdout
    assert not alive(pid)
    assert _processes_under(data) == []
    assert port_is_free(port)
    assert "SIGTERM: stopping the platform" in log.read_text()

    status = run_dsml("status", "--settings", settings)
    assert status.returncode == 3, status.stdout + status.stderr
    assert "not running" in status.stdout
    # how it ended, for whoever looks next
    assert "last stop" in status.stdout and "stopped as asked" in status.stdout
    as_json = json.loads(run_dsml("status", "--settings", settings, "--json").stdout)
    assert as_json["state"] == "not running"
    assert as_json["last_stop"]["reason"].startswith("stopped as asked")
    assert as_json["last_stop"]["log"] == str(log)
    again = run_dsml("down", "--settings", settings)
    assert again.returncode == 0
    assert f"no platform is running on {data}" in again.stdout


def test_detach_that_does_not_come_up_shows_the_end_of_its_log(
    env_datadir: DataDir, tmp_path: Path, reaper: None
) -> None:
    data = tmp_path / "data"
    settings = str(write_settings(tmp_path / "settings.yaml", data, free_port()))
    up = run_dsml("up", "--detach", "--no-build", "--ready-timeout", "0.2", "--settings", settings)
    assert up.returncode == 1, up.stdout + up.stderr
    assert "the platform did not come up: dsml up exited with code 1" in up.stderr
    assert "the hub did not become healthy within 0 s" in up.stderr  # from the log's end
    assert _processes_under(data) == []
    status = run_dsml("status", "--settings", settings)
    assert status.returncode == 3
    assert "failed: the hub did not become healthy within 0 s" in status.stdout


def test_a_hub_that_dies_past_the_restart_budget_stops_the_platform_and_status_says_why(
    env_datadir: DataDir, tmp_path: Path, reaper: None
) -> None:
    """--max-restarts 0: the first death of the hub ends the platform, with nothing left."""
    port, data = free_port(), tmp_path / "data"
    settings = str(write_settings(tmp_path / "settings.yaml", data, port))
    up = run_dsml(
        "up", "--detach", "--no-build", "--max-restarts", "0", "--settings", settings, timeout=300
    )
    assert up.returncode == 0, up.stdout + up.stderr
    supervisor = record(data)["processes"]["dsml-up"]["pid"]
    hub = record(data)["processes"]["hub"]["pid"]
    os.kill(hub, signal.SIGKILL)
    wait_until(lambda: not alive(supervisor), 120, "dsml up stops after the hub's death")
    wait_until(lambda: _processes_under(data) == [], 60, "nothing of the platform left running")
    assert port_is_free(port)
    log = (data / "logs" / "dsml-up.log").read_text()
    assert "gave up: JupyterHub was killed by SIGKILL and the 0 restarts allowed" in log
    status = run_dsml("status", "--settings", settings)
    assert status.returncode == 3, status.stdout + status.stderr
    assert "gave up: JupyterHub was killed by SIGKILL" in status.stdout
    assert "(--max-restarts, --restart-window)" in status.stdout


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: `make test` installs it (Debian package systemd)"
    data = tmp_path / "data"
    settings = write_settings(tmp_path / "settings.yaml", data, free_port())
    made = run_dsml("systemd-unit", "--settings", str(settings), "--user-name", getpass.getuser())
    assert made.returncode == 0, made.stderr
    unit = tmp_path / "dsml-platform.service"
    unit.write_text(made.stdout)
    lines = made.stdout.splitlines()
    exec_start = next(line for line in lines if line.startswith("ExecStart="))
    assert exec_start == (f"ExecStart={DSML_BIN} up --data-dir {data} --settings {settings}"), (
        exec_start
    )
    for expected in (
        f"WorkingDirectory={ROOT}",
        "KillMode=mixed",
        "Restart=on-failure",
        "TimeoutStopSec=90",
        f"User={getpass.getuser()}",
    ):
        assert expected in lines
    verified = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    # in a container it may complain about the machine; nothing may be about our unit
    about_ours = [
        line for line in (verified.stdout + verified.stderr).splitlines() if unit.name in line
    ]
    assert about_ours == [], verified.stderr


def test_users_list_pages_through_every_user(platform: Platform, admin_api: httpx.Client) -> None:
    # 210: more than the 50 of a default page and the 200 the hub sends at most in one answer
    names = [f"pageuser-{i:03d}" for i in range(210)]
    r = admin_api.post("users", json={"usernames": names})
    assert r.status_code == 201, r.text[:300]
    try:
        env = {**os.environ, "DSML_HUB_URL": platform.url, "DSML_ADMIN_TOKEN": platform.admin_token}
        listed = subprocess.run(
            DSML + ["users", "list", "--json"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=True,
        )
        users = [u["name"] for u in json.loads(listed.stdout)]
        assert len(users) == len(set(users))
        assert set(names) <= set(users)
        assert {"admin", "analyst", "stakeholder"} <= set(users)
    finally:
        for name in names:
            admin_api.delete(f"users/{name}")


def test_the_ports_chosen_are_distinct_and_never_the_public_port(tmp_path: Path) -> None:
    """A service at the public port made the proxy route to itself (HTTP 431 on every check)."""
    datadir = DataDir(tmp_path / "data")
    datadir.ensure()
    public = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        busy = taken.getsockname()[1]
        free = free_port()
        (datadir.hub / "ports.json").write_text(
            json.dumps({"scheduler": free, "portal": public, "apps": busy})
        )
        for _ in range(50):
            ports = choose_ports(datadir, public)
            assert len(set(ports.values())) == 5, ports
            assert public not in ports.values(), ports
            assert ports["scheduler"] == free  # still free: the same as last time
            assert ports["apps"] != busy
    # what was chosen is remembered for the next start
    again = choose_ports(datadir, public)
    assert {k: again[k] for k in ("scheduler", "portal", "apps")} == {
        k: ports[k] for k in ("scheduler", "portal", "apps")
    }
