"""Session fixtures: curated environments built once, and one real platform per test session.

The platform is started exactly as a person starts it (`dsml up --demo`) on a free loopback
port with a temporary data dir; every process it started is stopped at the end, also when a
test fails.

As root (CI), the platform gives each user a system account: the data dirs live under a base
temp folder in /tmp that other accounts can pass through (pytest's own for root is closed), the
accounts get a prefix of this session's own, and every account the session made is deleted at
its end.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from dsml.datadir import DataDir
from dsml.environments import build as env_build
from dsml.environments import find_environment

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"
ENV_CACHE = Path(os.environ.get("DSML_TEST_ENV_CACHE", ROOT / ".dsml-test" / "envs"))
ENVIRONMENTS = ["python-minimal", "datascience"]
DSML = [sys.executable, "-m", "dsml"]
AS_ROOT = os.geteuid() == 0
ACCOUNT_PREFIX = os.environ.get("DSML_TEST_ACCOUNT_PREFIX") or f"dsml-t{os.getpid() % 4096:03x}-"
"""Prefix of the system accounts this session's platforms make (deleted at the end)."""


def pytest_configure(config: pytest.Config) -> None:
    """As root, keep temp folders where user accounts can pass through (not /tmp/pytest-of-root)."""
    if AS_ROOT and not config.option.basetemp:
        digest = hashlib.sha256(str(ROOT).encode()).hexdigest()[:8]
        config.option.basetemp = Path("/tmp") / f"dsml-pytest-{digest}"


def passable(path: Path) -> Path:
    """Let other accounts pass through `path` and its folders up to /tmp (adds x, not r)."""
    for folder in [path, *path.parents]:
        if folder == Path("/tmp") or Path("/tmp") not in folder.parents:
            break
        os.chmod(folder, os.stat(folder).st_mode | 0o011)
    return path


@pytest.fixture
def tmp_path(tmp_path: Path) -> Path:
    """pytest's tmp_path, which user accounts can pass through and (like /tmp) write in.

    As root, a test's platform keeps its data dir here and its users' runs may write files the
    test reads (sticky: an account removes only its own; no listing).
    """
    if AS_ROOT:
        passable(tmp_path)
        os.chmod(tmp_path, 0o1733)
    return tmp_path


def platform_accounts() -> set[str]:
    """Names of the system accounts platforms made (their comment says `dsml user`)."""
    import pwd

    return {e.pw_name for e in pwd.getpwall() if e.pw_gecos.startswith("dsml user ")}


@pytest.fixture(scope="session", autouse=True)
def remove_accounts() -> Iterator[None]:
    """Delete the system accounts the session's platforms made, so the machine stays clean."""
    before = platform_accounts() if AS_ROOT else set()
    yield
    if AS_ROOT:
        # only this session's: a platform running beside the tests keeps its users' accounts
        for name in sorted(platform_accounts() - before):
            if name.startswith(ACCOUNT_PREFIX):
                subprocess.run(["userdel", name], capture_output=True)


def run_async(coro):  # type: ignore[no-untyped-def]
    """asyncio.run on a thread of its own: Playwright's sync API keeps a loop on the main one."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MailSink:
    """A real SMTP server on loopback that keeps what it receives (for notification tests)."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[dict[str, object]] = []
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.messages.append(
            {"to": list(envelope.rcpt_tos), "data": envelope.content.decode("utf8", "replace")}
        )
        return "250 OK"

    def stop(self) -> None:
        self.controller.stop()


MAIL = MailSink.__new__(MailSink)
"""The session's mail sink; started by the platform fixture."""


def write_settings(path: Path, data_dir: Path, port: int, **extra: object) -> Path:
    """Write a settings file for a test platform; environments come from the shared cache."""
    settings = {
        "hub": {"ip": "127.0.0.1", "port": port},
        "data_dir": str(data_dir),
        "environments_dir": str(ENV_CACHE),
        # longer than the suite: the hub learns of a server's use up to 5 min late (activity
        # is reported every 300 s), so with 600 s a server idle for 9 min was culled under a
        # test that had just opened it (CI, test_lab_create_job.py)
        "culler": {"enabled": True, "timeout_seconds": 3600, "every_seconds": 60},
        "environments": ENVIRONMENTS,
        "accounts": {"prefix": ACCOUNT_PREFIX},
        "scheduler": {
            "capacity": 2,
            "warm_workers": 1,
            "max_output_bytes": 2_000_000,
            "smtp_host": "127.0.0.1",
            "smtp_port": getattr(MAIL, "port", 25),
            # the notification tests' webhook sink listens here; every other private
            # address stays refused
            "webhook_allow": ["127.0.0.1"],
            # a demoted user's jobs pause within seconds, not a minute
            "rights_cache_seconds": 2,
        },
    }
    settings.update(extra)
    path.write_text(yaml.safe_dump(settings))
    return path


@pytest.fixture(scope="session")
def env_datadir(tmp_path_factory: pytest.TempPathFactory) -> DataDir:
    """A data dir whose curated environments are built (once, cached across sessions)."""
    datadir = DataDir(tmp_path_factory.mktemp("envs-data"), environments_dir=str(ENV_CACHE))
    datadir.ensure()
    for name in ENVIRONMENTS:
        env_build.build(find_environment(name), datadir, quiet=True, log=lambda m: None)
    return datadir


@dataclass
class Platform:
    """A running platform: its URL, data dir, demo accounts and admin token."""

    url: str
    datadir: DataDir
    users: dict[str, dict[str, str]]
    admin_token: str
    log: Path

    def password(self, name: str) -> str | None:
        """The demo password of `name` (None with single sign-on)."""
        return self.users[name]["password"]


def _processes_under(folder: Path) -> list[int]:
    """Pids whose working directory is inside `folder` (user servers left behind)."""
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
    data_dir: Path,
    port: int | None = None,
    settings: dict[str, object] | None = None,
) -> Iterator[Platform]:
    """Run `dsml up --demo` until the block ends; then check that Ctrl-C left nothing running.

    `settings` replaces top-level keys of the test settings (e.g. `{"auth": {...}}`).
    """
    base.mkdir(parents=True, exist_ok=True)
    passable(base)
    port = port or free_port()
    settings_file = write_settings(base / "settings.yaml", data_dir, port, **(settings or {}))
    log = base / f"dsml-up-{port}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            DSML + ["up", "--demo", "--settings", str(settings_file)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=base,
        )
    # a relative data dir is relative to where `dsml up` runs, as for a person
    data_dir = data_dir if data_dir.is_absolute() else base / data_dir
    datadir = DataDir(data_dir, environments_dir=str(ENV_CACHE))
    url = f"http://127.0.0.1:{port}"
    problems: list[str] = []
    try:
        deadline = time.monotonic() + 180
        while "the platform is up" not in log.read_text():
            if proc.poll() is not None:
                raise RuntimeError(f"dsml up exited {proc.returncode}:\n{log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"dsml up not ready in time:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        users = {u["name"]: u for u in json.loads(datadir.demo_users.read_text())}
        token = (datadir.secrets / "admin-api-token").read_text().strip()
        yield Platform(url=url, datadir=datadir, users=users, admin_token=token, log=log)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                problems.append("dsml up did not stop within 60 s of Ctrl-C")
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            if proc.returncode != 0:
                problems.append(f"dsml up exited {proc.returncode} after Ctrl-C")
        leftovers = _processes_under(data_dir)
        for pid in leftovers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if leftovers:
            problems.append(f"processes left running after Ctrl-C: {leftovers}")
    if problems:
        raise AssertionError("; ".join(problems) + f"\n{log.read_text()[-2000:]}")


SESSION_SETTINGS: dict[str, object] = {
    "apps": {
        # apps as code: published by the apps service when it starts (tests/test_apps_browser.py)
        "declared": [
            {
                "slug": "declared-squares",
                "owner": "scientist",
                "notebook": str(ROOT / "tests" / "notebooks" / "widget_slider.ipynb"),
                "title": "Squares (declared)",
                "description": "Declared in the settings file.",
                "environment": "datascience",
                "share": {"everyone": True},
            }
        ]
    }
}
"""Settings of the session's platform beyond the test defaults."""


@pytest.fixture(scope="session")
def platform(env_datadir: DataDir, tmp_path_factory: pytest.TempPathFactory):
    """One platform for the whole session, started as `make up` starts it."""
    base = tmp_path_factory.mktemp("platform")
    MAIL.__init__()
    try:
        with running_platform(base, base / "data", settings=SESSION_SETTINGS) as running:
            yield running
    finally:
        MAIL.stop()


MADE_TOKENS: list[str] = []
"""Every hub API token `hub_token` made in this session (the secrets test looks for each)."""


def hub_token(platform: Platform, name: str) -> str:
    """Log `name` in through the login form and ask the hub for an API token, as a user can."""
    with httpx.Client(base_url=platform.url, timeout=30) as client:
        client.get("/hub/login")
        r = client.post(
            "/hub/login",
            data={
                "username": name,
                "password": platform.password(name),
                "_xsrf": client.cookies.get("_xsrf"),
            },
        )
        assert r.status_code == 302, r.text[:300]
        r = client.post(
            f"/hub/api/users/{name}/tokens",
            json={"note": "tests"},
            headers={"X-XSRFToken": client.cookies.get("_xsrf")},
        )
        assert r.status_code == 201, r.text[:300]
        token = r.json()["token"]
        MADE_TOKENS.append(token)
        return token


@pytest.fixture(scope="session")
def admin_api(platform: Platform):
    """An httpx client on the hub API with the dsml-admin service token."""
    with httpx.Client(
        base_url=platform.url + "/hub/api/",
        headers={"Authorization": f"token {platform.admin_token}"},
        timeout=30,
    ) as client:
        yield client


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser():
    """Debian's headless Chromium, driven by Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield b
        b.close()


def fuzz_api(
    platform: Platform,
    service: str,
    token: str,
    cwd: Path,
    max_examples: int = 20,
    seeds: dict[str, list[object]] | None = None,
) -> subprocess.CompletedProcess:
    """Fuzz one REST API of ours from its OpenAPI file with schemathesis, bounded.

    `service` is a service's name or `hub` (what the platform adds to the hub's API). A fixed
    seed and one worker make a run repeat; its length grows with `max_examples` (examples per
    operation). The checks: no server error, every answer as the OpenAPI file describes it
    (status, content type, schema), and every error JSON `{status, message}` (tests/fuzz_hooks.py,
    which also aims 3 in 4 requests at the real resources in `seeds` and never at the demo
    accounts). The requests sent, per operation and status, are in `cwd/counts.json`.
    """
    spec = ROOT / "extensions" / "dsml" / service / "openapi.yaml"
    base = "/hub/api" if service == "hub" else f"/services/{service}/api"
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": str(ROOT / "tests" / "fuzz_hooks.py"),
        "DSML_FUZZ_COUNT_FILE": str(cwd / "counts.json"),
        "DSML_FUZZ_IDS": json.dumps(seeds or {}),
        "DSML_FUZZ_PROTECTED_NAMES": ",".join(platform.users),
    }
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "schemathesis"),
            "--no-color",
            "run",
            str(spec),
            "--url",
            platform.url + base,
            "--header",
            f"Authorization: token {token}",
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,"
            "response_schema_conformance,error_is_status_message",
            "--max-examples",
            str(max_examples),
            "--seed",
            "1",
            "--workers",
            "1",
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "--request-timeout",
            "20",
        ],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        # generous: a bound on a hung run, not on a slow one (about 12 s an example in all)
        timeout=120 + 12 * max_examples,
    )
