"""Load: many users at once on one platform, driven from a second process on loopback.

Each simulated user does what a person does in their first minutes on the platform, through
the proxy like a browser (cookies kept, redirects and the services' OAuth followed):

sign-in       GET /hub/login, then POST the login form (NativeAuthenticator's bcrypt check)
portal        the portal home (/services/portal/, the first visit runs the OAuth dance), a hub
              API token made at /hub/api/users/NAME/tokens as a person does from the token page,
              the usage API (/services/portal/api/usage) and the usage page
apps          a viewer opens the published app at its stable link (/services/apps/a/SLUG): the
              page rendered, then the page's kernel websocket answering kernel_info, then the
              page's close beacon. At most `viewers` users do this (each holds a kernel: about
              what 2 cores hold at once); the others load the apps gallery and the apps API list
jobs          users of a lab group list their jobs and their run history; `jobs` of them also
              create a job (the trivial notebook) and submit a run, whose end is waited for

Users arrive spread over `arrival_seconds` (a sign-in storm, not one user after another). All
the while a separate client asks the hub's `/hub/health` every `health_every` seconds: its
latency and whether it ever failed to answer show whether the hub's event loop stalled.

The users are made before the load through the hub's REST API with the admin token, the way
`dsml users add` makes them (so as root each gets a system account), together with one app
owner who publishes the app; they, their jobs and the app are deleted at the end.

Then (unless --no-peer) the same users sign in again and do nothing else, and the same sign-in
storm hits a plain JupyterHub 5 with NativeAuthenticator as z2jh or a pip install runs it
(open sign-up to make the users; bcrypt on the hub's event loop), started after ours has
stopped: what the hub's health check does under sign-ins alone, with the check off the loop
and on it.

Nothing here asserts: latencies (p50/p95/max) and errors per kind of request are printed, the
raw figures go to bench/results/. tests/test_load.py runs a short pass of the same driver.

    .venv/bin/python bench/load.py                   # starts its own platform, 200 users
    .venv/bin/python bench/load.py --quick           # 50 users, 5 viewers, 10 jobs
    .venv/bin/python bench/load.py --url http://127.0.0.1:8000 --admin-token-file \\
        .dsml/data/secrets/admin-api-token           # against a running platform
    .venv/bin/python bench/run.py --only load
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from apps import APP_PAGE, BASE_URL, summary
from launch import (
    BENCH,
    ROOT,
    Progress,
    bench_main,
    free_port,
    print_report,
    progress,
    running_platform,
)

from dsml.cli.accounts import add_user
from dsml.client import RUN_FINAL_STATES, HubClient
from dsml.exceptions import HubError

APP_NOTEBOOK = BENCH / "notebooks" / "widgets_app.ipynb"
JOB_NOTEBOOK = BENCH / "notebooks" / "trivial.ipynb"
ENVIRONMENT = "python-minimal"
NAMES = ("load",)
"""The benchmarks this module runs (what run.py's --only accepts)."""

GROUP_CYCLE = (
    "data-scientists",
    "stakeholders",
    "analysts",
    "data-scientists",
    "stakeholders",
    "newcomers",
    "data-scientists",
    "analysts",
    "stakeholders",
    "data-scientists",
)
"""Groups of the simulated users, in turn: 4 data scientists, 3 stakeholders, 2 analysts and
1 newcomer in 10."""
LAB_GROUPS = {"data-scientists", "analysts", "newcomers"}
"""Groups whose members may run jobs (the lab-user role grants jobs:run)."""

KINDS = (
    "login page",
    "sign-in",
    "portal home",
    "hub token",
    "portal usage API",
    "portal usage page",
    "app page",
    "app kernel_info",
    "app close",
    "apps gallery",
    "apps API list",
    "jobs list",
    "create job",
    "submit run",
    "run history",
    "job runs",
)
"""Kinds of request, in the order a user makes them (the report's rows)."""


@dataclass
class Options:
    """Sizes of the load (the defaults are the full run; --quick shrinks them)."""

    users: int = 200
    viewers: int = 20
    jobs: int = 40
    arrival_seconds: float = 30.0
    health_every: float = 0.25
    health_timeout: float = 10.0
    request_timeout: float = 120.0
    deadline_seconds: float = 900.0
    runs_deadline_seconds: float = 900.0
    peer: bool = True
    """Also run the sign-in storm alone on ours and on a plain hub with NativeAuthenticator."""
    niceness: int | None = None
    """accounts.niceness of the platform started (None: the platform's default)."""

    @classmethod
    def quick(cls) -> Options:
        """A smaller load, for a smoke run."""
        return cls(users=50, viewers=5, jobs=10, arrival_seconds=10.0)


@dataclass
class Recorder:
    """Latencies and errors per kind of request, and /hub/health's samples."""

    samples: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    health: list[tuple[float, float | None, str | None]] = field(default_factory=list)
    users_done: int = 0
    runs: list[dict[str, Any]] = field(default_factory=list)

    def error(self, kind: str, message: str) -> None:
        """Count one failed request of `kind`."""
        self.errors[kind].append(message[:300])

    async def call(
        self,
        kind: str,
        client: httpx.AsyncClient,
        method: str,
        url: str,
        expect: tuple[int, ...] = (200,),
        **kwargs: Any,
    ) -> httpx.Response | None:
        """One timed request; an exception or a status outside `expect` counts as an error."""
        started = time.perf_counter()
        try:
            r = await client.request(method, url, **kwargs)
        except httpx.HTTPError as e:
            self.error(kind, f"{method} {url}: {type(e).__name__}: {e}")
            return None
        self.samples[kind].append(time.perf_counter() - started)
        if r.status_code not in expect:
            self.error(kind, f"{method} {url}: HTTP {r.status_code} {r.text[:160]!r}")
            return None
        return r

    def requests(self) -> int:
        """Requests answered so far (any status)."""
        return sum(len(v) for v in self.samples.values())

    def error_count(self) -> int:
        """Failed requests so far."""
        return sum(len(v) for v in self.errors.values())


# the simulated user


@dataclass
class User:
    """A simulated user: name, password, group and what they do."""

    name: str
    password: str
    group: str
    viewer: bool = False
    submitter: bool = False


def plan_users(prefix: str, opts: Options) -> list[User]:
    """The users of one load: groups in turn, viewers and job submitters spread among them."""
    users = [
        User(f"{prefix}{i:03d}", "", GROUP_CYCLE[i % len(GROUP_CYCLE)]) for i in range(opts.users)
    ]
    for i in _spread(len(users), opts.viewers):
        users[i].viewer = True
    lab = [u for u in users if u.group in LAB_GROUPS]
    for i in _spread(len(lab), opts.jobs):
        lab[i].submitter = True
    return users


def _spread(n: int, k: int) -> list[int]:
    """k indices out of range(n), evenly spaced (all of them when k >= n)."""
    k = max(0, min(k, n))
    return sorted({int(i * n / k) for i in range(k)}) if k else []


def _xsrf(client: httpx.AsyncClient, path: str = "/hub/") -> str:
    """The _xsrf cookie a page under `path` set (the hub's by default)."""
    best = ""
    for c in client.cookies.jar:
        if c.name == "_xsrf" and path.startswith(c.path or "/"):
            if not best or len(c.path or "/") > len(best[0]):
                best = (c.path or "/", c.value)  # type: ignore[assignment]
    return best[1] if best else ""


def _cookie_header(client: httpx.AsyncClient, path: str) -> str:
    """The Cookie header a browser sends with a websocket to `path`."""
    return "; ".join(
        f"{c.name}={c.value}" for c in client.cookies.jar if path.startswith(c.path or "/")
    )


async def kernel_info(client: httpx.AsyncClient, page: httpx.URL, base: str, kernel: str) -> None:
    """Open the app page's kernel websocket and wait for the kernel_info_reply."""
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    path = f"{base}api/kernels/{kernel}/channels"
    url = f"ws://{page.host}:{page.port}{path}?session_id={uuid.uuid4()}"
    request = HTTPRequest(
        url,
        headers={"Cookie": _cookie_header(client, path)},
        connect_timeout=60,
        request_timeout=60,
    )
    ws = await websocket_connect(request)
    try:
        msg_id = uuid.uuid4().hex
        header = {
            "msg_id": msg_id,
            "username": "",
            "session": uuid.uuid4().hex,
            "msg_type": "kernel_info_request",
            "version": "5.3",
            "date": datetime.now(UTC).isoformat(),
        }
        message = {
            "header": header,
            "parent_header": {},
            "metadata": {},
            "content": {},
            "channel": "shell",
            "buffers": [],
        }
        await ws.write_message(json.dumps(message))
        while True:
            raw = await asyncio.wait_for(ws.read_message(), 60)
            if raw is None:
                raise RuntimeError("the websocket closed before the kernel_info_reply")
            msg = json.loads(raw)
            if (msg.get("parent_header") or {}).get("msg_id") == msg_id and msg.get(
                "msg_type"
            ) == "kernel_info_reply":
                return
    finally:
        ws.close()


async def open_app(rec: Recorder, client: httpx.AsyncClient, url: str, deadline: float) -> None:
    """Open the app as a browser does: page (polling a waking app), kernel_info, close beacon."""
    started = time.perf_counter()
    while True:
        try:
            r = await client.get(url, follow_redirects=True)
        except httpx.HTTPError as e:
            rec.error("app page", f"GET {url}: {type(e).__name__}: {e}")
            return
        found = APP_PAGE.search(r.text) if r.status_code == 200 else None
        if found:
            break
        if r.status_code >= 400 or time.perf_counter() - started > deadline:
            rec.error("app page", f"GET {url}: no app page (HTTP {r.status_code} {r.text[:120]!r})")
            return
        await asyncio.sleep(0.25)  # the progress page of a waking app asks again like this
    rec.samples["app page"].append(time.perf_counter() - started)
    kernel = found.group(1)
    base_match = BASE_URL.search(r.text)
    base = base_match.group(1) if base_match else "/"
    t0 = time.perf_counter()
    try:
        await kernel_info(client, r.url, base, kernel)
    except Exception as e:  # noqa: BLE001 - a refused websocket is an error of its kind
        rec.error("app kernel_info", f"kernel {kernel}: {type(e).__name__}: {e}")
        return
    rec.samples["app kernel_info"].append(time.perf_counter() - t0)
    origin = f"{r.url.scheme}://{r.url.netloc.decode()}"
    await rec.call(
        "app close",
        client,
        "POST",
        f"{origin}{base}voila/api/shutdown/{kernel}",
        expect=(200, 204),
        headers={"X-XSRFToken": _xsrf(client, base)},
    )


@dataclass
class Target:
    """What the users hit: the platform's URL and the app's stable link."""

    url: str
    app_url: str | None


async def user_session(
    rec: Recorder, target: Target, user: User, viewers: asyncio.Semaphore, opts: Options
) -> None:
    """One user's visit, start to end; failures are recorded, never raised."""
    async with httpx.AsyncClient(base_url=target.url, timeout=opts.request_timeout) as c:
        if not await rec.call("login page", c, "GET", "/hub/login"):
            return
        form = {"username": user.name, "password": user.password, "_xsrf": _xsrf(c)}
        # a wrong password re-renders the form with 200: only the redirect means signed in
        if not await rec.call("sign-in", c, "POST", "/hub/login", data=form, expect=(302,)):
            return
        await rec.call("portal home", c, "GET", "/services/portal/", follow_redirects=True)
        r = await rec.call(
            "hub token",
            c,
            "POST",
            f"/hub/api/users/{user.name}/tokens",
            json={"note": "load", "expires_in": 3600},
            headers={"X-XSRFToken": _xsrf(c)},
            expect=(201,),
        )
        if r is None:
            return
        auth = {"Authorization": f"token {r.json()['token']}"}
        await rec.call("portal usage API", c, "GET", "/services/portal/api/usage", headers=auth)
        await rec.call(
            "portal usage page", c, "GET", "/services/portal/usage", follow_redirects=True
        )
        if user.viewer and target.app_url:
            async with viewers:  # each open app holds a kernel: cap them
                await open_app(rec, c, target.app_url, opts.request_timeout)
        else:
            await rec.call("apps gallery", c, "GET", "/services/apps/", follow_redirects=True)
            await rec.call("apps API list", c, "GET", "/services/apps/api/apps", headers=auth)
        if user.group not in LAB_GROUPS:
            return
        api = "/services/scheduler/api"
        await rec.call("jobs list", c, "GET", f"{api}/jobs", headers=auth)
        job = None
        if user.submitter:
            body = {
                "name": f"load {user.name}",
                "notebook": json.loads(JOB_NOTEBOOK.read_text()),
                "notebook_name": JOB_NOTEBOOK.name,
                "environment": ENVIRONMENT,
                "retries": 0,
            }
            r = await rec.call(
                "create job", c, "POST", f"{api}/jobs", json=body, headers=auth, expect=(201,)
            )
            if r is not None:
                job = r.json()
                submitted = time.perf_counter()
                r = await rec.call(
                    "submit run",
                    c,
                    "POST",
                    f"{api}/jobs/{job['id']}/runs",
                    json={},
                    headers=auth,
                    expect=(201,),
                )
                if r is not None:
                    rec.runs.append(
                        {"id": r.json()["id"], "job": job["id"], "auth": auth,
                         "submitted": submitted, "state": r.json()["state"]}
                    )  # fmt: skip
        await rec.call("run history", c, "GET", f"{api}/runs", headers=auth)
        if job is not None:
            await rec.call("job runs", c, "GET", f"{api}/jobs/{job['id']}/runs", headers=auth)


async def sample_health(rec: Recorder, url: str, opts: Options, stop: asyncio.Event) -> None:
    """Ask /hub/health every `health_every` s until `stop`; record latency or failure."""
    async with httpx.AsyncClient(timeout=opts.health_timeout) as client:
        while not stop.is_set():
            t = time.monotonic()
            started = time.perf_counter()
            try:
                r = await client.get(url + "/hub/health")
                latency: float | None = time.perf_counter() - started
                problem = None if r.status_code == 200 else f"HTTP {r.status_code}"
            except httpx.HTTPError as e:
                latency, problem = None, f"{type(e).__name__}: {e or 'no answer'}"
            if problem:
                latency = None
            rec.health.append((t, latency, problem))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    stop.wait(), max(0.0, opts.health_every - (time.monotonic() - t))
                )


async def watch_runs(rec: Recorder, url: str, opts: Options, say: Progress) -> None:
    """Poll every submitted run (once a second) until all are final or the deadline passes."""
    deadline = time.monotonic() + opts.runs_deadline_seconds
    pending = [run for run in rec.runs if run["state"] not in RUN_FINAL_STATES]
    last_said = 0.0
    async with httpx.AsyncClient(base_url=url + "/services/scheduler/api", timeout=60) as c:
        while pending and time.monotonic() < deadline:
            for run in list(pending):
                with contextlib.suppress(httpx.HTTPError):
                    r = await c.get(f"/runs/{run['id']}", headers=run["auth"])
                    if r.status_code == 200:
                        run["state"] = r.json()["state"]
                if run["state"] in RUN_FINAL_STATES:
                    run["seconds"] = time.perf_counter() - run["submitted"]
                    pending.remove(run)
            if time.monotonic() - last_said > 10:
                last_said = time.monotonic()
                say(f"runs: {len(rec.runs) - len(pending)}/{len(rec.runs)} final")
            await asyncio.sleep(1)
    for run in pending:
        rec.error("run outcome", f"run {run['id']} still {run['state']} at the deadline")
    for run in rec.runs:
        if run["state"] in RUN_FINAL_STATES and run["state"] != "succeeded":
            rec.error("run outcome", f"run {run['id']} ended {run['state']}")


# the sign-in storm, alone: ours against a plain hub with NativeAuthenticator


async def signin_storm(url: str, users: list[User], opts: Options) -> dict[str, Any]:
    """Only sign-ins (login page + form), arriving over `arrival_seconds`, /hub/health sampled."""
    rec = Recorder()
    stop = asyncio.Event()
    health = asyncio.create_task(sample_health(rec, url, opts, stop))

    async def one(i: int, user: User) -> None:
        await asyncio.sleep(i * opts.arrival_seconds / max(1, len(users)))
        async with httpx.AsyncClient(base_url=url, timeout=opts.request_timeout) as c:
            if await rec.call("login page", c, "GET", "/hub/login"):
                form = {"username": user.name, "password": user.password, "_xsrf": _xsrf(c)}
                await rec.call("sign-in", c, "POST", "/hub/login", data=form, expect=(302,))

    started = time.monotonic()
    try:
        await asyncio.gather(*(one(i, u) for i, u in enumerate(users)))
    finally:
        stop.set()
        await health
    return {"seconds": round(time.monotonic() - started, 1), **figures(rec, users)}


PEER_CONFIG = """\
# a plain JupyterHub with NativeAuthenticator as z2jh or a pip install would run it
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_port = {hub_port}
c.JupyterHub.authenticator_class = "native"
c.NativeAuthenticator.open_signup = True
c.Authenticator.allow_all = True
c.JupyterHub.db_url = "sqlite:///{work}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{work}/cookie_secret"
c.ConfigurableHTTPProxy.command = ["{chp}"]
c.ConfigurableHTTPProxy.pid_file = "{work}/proxy.pid"
"""


@contextlib.contextmanager
def peer_hub(work: Path, say: Progress) -> Iterator[str]:
    """Run a plain JupyterHub 5 with NativeAuthenticator (bcrypt on its event loop); its URL."""
    work.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = work / "jupyterhub_config.py"
    chp = ROOT / "node_modules" / ".bin" / "configurable-http-proxy"
    config.write_text(PEER_CONFIG.format(port=port, hub_port=free_port(), work=work, chp=chp))
    log = work / "jupyterhub.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(config)],
            cwd=work, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"the peer hub exited {proc.returncode}: {log.read_text()[-1500:]}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/hub/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the peer hub did not answer in 120 s: {log.read_text()[-1500:]}"
                )
            time.sleep(0.3)
        say(f"plain JupyterHub + NativeAuthenticator listening on port {port}")
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


async def sign_up(url: str, users: list[User], say: Progress, parallel: int = 4) -> None:
    """Make the users on the peer hub through NativeAuthenticator's sign-up form (open sign-up)."""
    gate = asyncio.Semaphore(parallel)
    made = 0

    async def one(user: User) -> None:
        nonlocal made
        user.password = secrets.token_urlsafe(12)
        async with gate, httpx.AsyncClient(base_url=url, timeout=300) as c:
            await c.get("/hub/signup")
            form = {
                "username": user.name,
                "signup_password": user.password,
                "signup_password_confirmation": user.password,
                "_xsrf": _xsrf(c),
            }
            r = await c.post("/hub/signup", data=form)
            if r.status_code != 200 or "alert-success" not in r.text:
                raise RuntimeError(f"sign-up of {user.name} on the peer hub: HTTP {r.status_code}")
        made += 1
        if made % 50 == 0:
            say(f"signed up {made}/{len(users)} users on the peer hub")

    await asyncio.gather(*(one(u) for u in users))


def peer_storm(opts: Options, work: Path, say: Progress) -> dict[str, Any]:
    """The same sign-in storm against a plain hub with NativeAuthenticator; its figures."""
    users = [User(f"peer{i:03d}", "", "") for i in range(opts.users)]
    with peer_hub(work, say) as url:
        say(f"signing up {len(users)} users on the peer hub (bcrypt on its loop: slow by design)")
        asyncio.run(sign_up(url, users, say))
        say(f"sign-in storm on the peer hub: {len(users)} users over {opts.arrival_seconds:.0f} s")
        return asyncio.run(signin_storm(url, users, opts))


# setting up and tearing down


async def make_users(hub: HubClient, users: list[User], say: Progress, parallel: int = 8) -> None:
    """Create every user through the hub API as `dsml users add` does; sets their passwords."""
    gate = asyncio.Semaphore(parallel)
    made = 0

    async def one(user: User) -> None:
        nonlocal made
        async with gate:
            user.password = await add_user(hub, user.name, user.group) or ""
            made += 1
            if made % 50 == 0:
                say(f"made {made}/{len(users)} users")

    await asyncio.gather(*(one(u) for u in users))


async def delete_users(hub: HubClient, names: list[str], parallel: int = 8) -> list[str]:
    """Delete the users (the hub stops their servers and locks their accounts); the failures."""
    gate = asyncio.Semaphore(parallel)
    failed: list[str] = []

    async def one(name: str) -> None:
        async with gate:
            for _ in range(30):
                try:
                    answer = await hub.request("DELETE", f"users/{name}", ok=(400, 404))
                except HubError as e:
                    failed.append(f"{name} ({e})")
                    return
                if (answer or {}).get("status") != 400:  # 400: a server is still stopping
                    return
                await asyncio.sleep(1)
            failed.append(f"{name} (a server still stopping after 30 s)")

    await asyncio.gather(*(one(n) for n in names))
    return failed


async def publish_app(url: str, token: str, slug: str) -> str:
    """Publish the widgets notebook as `slug`, shared with everyone; return its stable link."""
    body = {
        "notebook": json.loads(APP_NOTEBOOK.read_text()),
        "notebook_path": f"bench/{APP_NOTEBOOK.name}",
        "title": "Load slider",
        "description": "load benchmark",
        "environment": ENVIRONMENT,
        "slug": slug,
        "share": {"everyone": True},
    }
    async with httpx.AsyncClient(
        base_url=url + "/services/apps/api",
        headers={"Authorization": f"token {token}"},
        timeout=120,
    ) as c:
        r = await c.post("/apps", json=body)
        if r.status_code != 201:
            raise RuntimeError(f"publishing app {slug}: HTTP {r.status_code} {r.text[:300]}")
        # wait until it serves, so the viewers measure opening a running app
        deadline = time.monotonic() + 180
        while True:
            state = (await c.get(f"/apps/{slug}/status")).json().get("state")
            if state == "running":
                break
            if state == "stopped":
                await c.post(f"/apps/{slug}/start")
            if time.monotonic() > deadline:
                raise RuntimeError(f"app {slug} not running within 180 s (state {state})")
            await asyncio.sleep(0.5)
    return f"{url}/services/apps/a/{slug}"


async def user_token(url: str, user: User) -> str:
    """A token of `user` made through the login form, as a person makes one."""
    async with httpx.AsyncClient(base_url=url, timeout=120) as c:
        await c.get("/hub/login")
        form = {"username": user.name, "password": user.password, "_xsrf": _xsrf(c)}
        r = await c.post("/hub/login", data=form)
        if r.status_code != 302:
            raise RuntimeError(f"login as {user.name} failed: HTTP {r.status_code}")
        r = await c.post(
            f"/hub/api/users/{user.name}/tokens",
            json={"note": "load app owner", "expires_in": 3600},
            headers={"X-XSRFToken": _xsrf(c)},
        )
        if r.status_code != 201:
            raise RuntimeError(f"token for {user.name} refused: HTTP {r.status_code}")
        return r.json()["token"]


async def cleanup(url: str, hub: HubClient, rec: Recorder, owner: str, slug: str | None,
                  owner_token: str | None, names: list[str]) -> list[str]:  # fmt: skip
    """Delete the load's jobs, its app and its users; return what could not be removed."""
    left: list[str] = []
    async with httpx.AsyncClient(base_url=url + "/services", timeout=60) as c:
        for job in {run["job"]: run["auth"] for run in rec.runs}.items():
            with contextlib.suppress(httpx.HTTPError):
                r = await c.delete(f"/scheduler/api/jobs/{job[0]}", headers=job[1])
                if r.status_code not in (204, 404):
                    left.append(f"job {job[0]}: HTTP {r.status_code}")
        if slug and owner_token:
            auth = {"Authorization": f"token {owner_token}"}
            with contextlib.suppress(httpx.HTTPError):
                r = await c.delete(f"/apps/api/apps/{slug}", headers=auth)
                if r.status_code not in (204, 404):
                    left.append(f"app {slug}: HTTP {r.status_code}")
    # the apps service stops the app's server (the owner's named server) when the app goes;
    # the hub's user deletion stops only a default server, so wait for it first
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            answer = await hub.request("GET", f"users/{owner}", ok=(404,))
        except HubError:
            break
        if answer.get("status") == 404 or not answer.get("servers"):
            break
        await asyncio.sleep(1)
    else:
        left.append(f"{owner}'s app server still running after 120 s")
    failed = await delete_users(hub, [*names, owner])
    left += [f"user {n}" for n in failed]
    return left


# the whole load


async def drive(url: str, admin_token: str, opts: Options, say: Progress = progress,
                prefix: str | None = None, storm: bool = False) -> dict[str, Any]:  # fmt: skip
    """Make the users and the app, run the load, clean up; return the figures.

    `prefix` names the users (`<prefix>NNN`, the owner `<prefix>owner`); a random one by default.
    With `storm`, the same users then sign in again, and nothing else (see `signin_storm`).
    """
    url = url.rstrip("/")
    prefix = prefix or f"load{uuid.uuid4().hex[:4]}-"
    users = plan_users(prefix, opts)
    owner = f"{prefix}owner"
    rec = Recorder()
    results: dict[str, Any] = {"options": asdict(opts), "url": url}
    slug: str | None = None
    owner_token: str | None = None
    async with HubClient(url, admin_token, timeout=120) as hub:
        try:
            say(f"making {len(users)} users and an app owner through the hub API")
            t0 = time.monotonic()
            owner_user = User(owner, "", "data-scientists")
            await make_users(hub, [owner_user, *users], say)
            results["setup_users_seconds"] = round(time.monotonic() - t0, 1)
            app_url = None
            if opts.viewers:
                owner_token = await user_token(url, owner_user)
                slug = f"load-{uuid.uuid4().hex[:8]}"
                say(f"publishing app {slug} as {owner}")
                app_url = await publish_app(url, owner_token, slug)
            target = Target(url, app_url)
            results["load"] = await _load(rec, target, users, opts, say)
            say(f"waiting for {len(rec.runs)} submitted runs to end")
            t0 = time.monotonic()
            await watch_runs(rec, url, opts, say)
            results["runs_wait_seconds"] = round(time.monotonic() - t0, 1)
            if storm:
                say(f"sign-in storm alone: {len(users)} users over {opts.arrival_seconds:.0f} s")
                results["storm"] = await signin_storm(url, users, opts)
        finally:
            say("deleting the load's jobs, app and users")
            results["left_behind"] = await cleanup(
                url, hub, rec, owner, slug, owner_token, [u.name for u in users]
            )
    results.update(figures(rec, users))
    return results


async def _load(
    rec: Recorder, target: Target, users: list[User], opts: Options, say: Progress
) -> dict[str, Any]:
    """Run every user's session (arriving over `arrival_seconds`) with /hub/health sampled."""
    stop = asyncio.Event()
    health = asyncio.create_task(sample_health(rec, target.url, opts, stop))
    viewers = asyncio.Semaphore(max(1, opts.viewers))
    started = time.monotonic()

    async def arrive(i: int, user: User) -> None:
        await asyncio.sleep(i * opts.arrival_seconds / max(1, len(users)))
        try:
            await user_session(rec, target, user, viewers, opts)
        except Exception as e:  # noqa: BLE001 - a driver bug is one user's error, not a crash
            rec.error("user", f"{user.name}: {type(e).__name__}: {e}")
        rec.users_done += 1

    async def status() -> None:
        while True:
            await asyncio.sleep(5)
            say(status_line(rec, len(users), time.monotonic() - started))

    reporter = asyncio.create_task(status())
    tasks = [asyncio.create_task(arrive(i, u)) for i, u in enumerate(users)]
    try:
        done, pending = await asyncio.wait(tasks, timeout=opts.deadline_seconds)
        for task in pending:
            task.cancel()
        if pending:
            rec.error("user", f"{len(pending)} users not done within {opts.deadline_seconds:.0f} s")
    finally:
        reporter.cancel()
        stop.set()
        await health
    seconds = time.monotonic() - started
    say(status_line(rec, len(users), seconds))
    return {"seconds": round(seconds, 1), "users_done": rec.users_done}


def status_line(rec: Recorder, total: int, elapsed: float) -> str:
    """One progress line: users done, requests, errors, /hub/health so far."""
    lat = [h[1] for h in rec.health if h[1] is not None]
    failed = sum(1 for h in rec.health if h[1] is None)
    recent = lat[-20:]
    return (
        f"{elapsed:5.0f} s: users {rec.users_done}/{total}, requests {rec.requests()}, "
        f"errors {rec.error_count()}, /hub/health last max "
        f"{(max(recent) * 1000 if recent else 0):.0f} ms, unanswered {failed}"
    )


def figures(rec: Recorder, users: list[User]) -> dict[str, Any]:
    """Per-kind latency summaries and errors, /hub/health, the runs; all JSON-ready."""
    kinds = [k for k in KINDS if k in rec.samples or k in rec.errors]
    kinds += sorted(k for k in {*rec.samples, *rec.errors} if k not in KINDS)
    per_kind = {
        kind: {
            **summary(rec.samples.get(kind, [])),
            "errors": len(rec.errors.get(kind, [])),
            "first_errors": rec.errors.get(kind, [])[:3],
        }
        for kind in kinds
    }
    health_lat = [h[1] for h in rec.health if h[1] is not None]
    unanswered = [h[2] for h in rec.health if h[1] is None]
    runs = [r for r in rec.runs if "seconds" in r]
    return {
        "users": {
            "total": len(users),
            "viewers": sum(u.viewer for u in users),
            "submitters": sum(u.submitter for u in users),
            "groups": {g: sum(u.group == g for u in users) for g in sorted(set(GROUP_CYCLE))},
        },
        "requests": per_kind,
        "health": {
            **summary(health_lat),
            "samples": len(rec.health),
            "unanswered": len(unanswered),
            "first_unanswered": unanswered[:3],
        },
        "runs": {
            "submitted": len(rec.runs),
            "states": {
                s: sum(r["state"] == s for r in rec.runs) for s in {r["state"] for r in rec.runs}
            },
            "submit_to_final": summary(r["seconds"] for r in runs),
        },
        "errors_total": rec.error_count(),
    }


# the printed summary


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 1000:.0f} ms"


def report(results: dict[str, Any]) -> list[str]:
    """The summary lines of the load benchmark."""
    opts = results["options"]
    users = results["users"]
    lines = [
        f"## load: {users['total']} users arriving over {opts['arrival_seconds']:.0f} s "
        f"({users['viewers']} open the app with a kernel, at most {opts['viewers']} at once; "
        f"{users['submitters']} submit a run); took {results['load']['seconds']} s",
        f"  {'request':<20}{'n':>6}{'p50':>10}{'p95':>10}{'max':>10}  errors",
    ]
    for kind, row in results["requests"].items():
        first = f" ({row['first_errors'][0][:90]})" if row["first_errors"] else ""
        lines.append(
            f"  {kind:<20}{row['n']:>6}{_ms(row['p50']):>10}{_ms(row['p95']):>10}"
            f"{_ms(row['max']):>10}  {row['errors']}{first}"
        )
    h = results["health"]
    lines.append(
        f"  /hub/health every {opts['health_every']} s throughout: {h['samples']} samples, "
        f"p50 {_ms(h['p50'])}, p95 {_ms(h['p95'])}, max {_ms(h['max'])}; "
        f"unanswered {h['unanswered']}"
        + (f" ({h['first_unanswered'][0][:80]})" if h["first_unanswered"] else "")
    )
    runs = results["runs"]
    lines.append(
        f"  runs: {runs['submitted']} submitted, final states {runs['states']}; submit -> final "
        f"p50 {_s(runs['submit_to_final']['p50'])}, max {_s(runs['submit_to_final']['max'])} "
        "(polled once a second)"
    )
    lines.append(
        f"  errors in all: {results['errors_total']}; left behind after clean-up: "
        f"{results.get('left_behind') or 'nothing'}"
    )
    storms = {
        "dsml hub (bcrypt in a thread)": results.get("storm"),
        "plain hub + NativeAuthenticator": results.get("peer_storm"),
    }
    if any(storms.values()):
        lines.append(
            f"sign-in storm alone, {users['total']} users over {opts['arrival_seconds']:.0f} s "
            "(login page + form; /hub/health sampled the same way):"
        )
        lines.append(
            f"  {'hub':<34}{'sign-in p50':>12}{'p95':>9}{'health p50':>12}{'p95':>9}{'max':>9}"
            "  unanswered  errors"
        )
        for name, storm in storms.items():
            if not storm:
                continue
            if "error" in storm:
                lines.append(f"  {name:<34}not measured: {storm['error'][:100]}")
                continue
            sign_in = storm["requests"].get("sign-in", summary([]))
            h = storm["health"]
            lines.append(
                f"  {name:<34}{_ms(sign_in['p50']):>12}{_ms(sign_in['p95']):>9}"
                f"{_ms(h['p50']):>12}{_ms(h['p95']):>9}{_ms(h['max']):>9}"
                f"  {h['unanswered']:>10}  {storm['errors_total']:>6}"
            )
    return lines


def _s(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} s"


# running it


def run(opts: Options, work: Path, say: Progress = progress) -> dict[str, Any]:
    """Start a platform (capacity 2), drive the load against it, stop it; then the peer."""
    settings = {} if opts.niceness is None else {"accounts": {"niceness": opts.niceness}}
    with running_platform(work / "platform", capacity=2, say=say, settings=settings) as platform:
        token = (platform.data_dir / "secrets" / "admin-api-token").read_text().strip()
        results = asyncio.run(drive(platform.url, token, opts, say, storm=opts.peer))
    return with_peer(results, opts, work, say)


def with_peer(results: dict[str, Any], opts: Options, work: Path, say: Progress) -> dict[str, Any]:
    """Add the peer's sign-in storm to `results` (when asked), run after ours has stopped."""
    if opts.peer:
        try:
            results["peer_storm"] = peer_storm(opts, work / "peer", say)
        except Exception as e:  # noqa: BLE001 - the peer failing is a figure, not our crash
            say(f"peer FAILED: {type(e).__name__}: {e}")
            results["peer_storm"] = {"error": f"{type(e).__name__}: {e}"}
    return results


def main(argv: list[str] | None = None) -> int:
    """Run the load alone: print the summary, save the raw figures."""
    parser = argparse.ArgumentParser(description="load: many users at once on one platform")
    parser.add_argument("--quick", action="store_true", help="50 users, 5 viewers, 10 jobs")
    parser.add_argument("--users", type=int, help="simulated users (200)")
    parser.add_argument("--viewers", type=int, help="users who open the app with a kernel (20)")
    parser.add_argument("--jobs", type=int, help="users who create a job and submit a run (40)")
    parser.add_argument("--arrival", type=float, help="seconds over which users arrive (30)")
    parser.add_argument("--url", help="a running platform's URL (default: start one)")
    parser.add_argument(
        "--admin-token-file",
        type=Path,
        help="with --url: the admin token (<data dir>/secrets/admin-api-token); "
        "or set DSML_ADMIN_TOKEN",
    )
    parser.add_argument(
        "--no-peer",
        action="store_true",
        help="skip the sign-in storm alone on ours and on a plain hub with NativeAuthenticator",
    )
    parser.add_argument(
        "--niceness",
        type=int,
        choices=range(20),
        metavar="0-19",
        help="accounts.niceness of the platform started (user code's CPU niceness; default 10)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    opts = Options.quick() if args.quick else Options()
    opts.peer = not args.no_peer
    opts.niceness = args.niceness
    for name, attr in (("users", "users"), ("viewers", "viewers"), ("jobs", "jobs"),
                       ("arrival", "arrival_seconds")):  # fmt: skip
        if getattr(args, name) is not None:
            setattr(opts, attr, getattr(args, name))
    token = ""
    if args.url:
        token = os.environ.get("DSML_ADMIN_TOKEN") or (
            args.admin_token_file.read_text().strip() if args.admin_token_file else ""
        )
        if not token:
            parser.error("--url needs --admin-token-file FILE or DSML_ADMIN_TOKEN")

    def measure(work: Path) -> dict[str, Any]:
        if args.url:
            results = asyncio.run(drive(args.url, token, opts, storm=opts.peer))
            return with_peer(results, opts, work, progress)
        return run(opts, work)

    return bench_main(
        "load",
        args.keep,
        measure,
        lambda results, info, out: print_report("load", info, report(results), out),
        own_accounts=not args.url,
    )


if __name__ == "__main__":
    sys.exit(main())
