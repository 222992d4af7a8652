"""kill -9 anywhere but the scheduler service, on the session's platform (issue #12, faults).

The scheduler service's own kill is tests/test_scheduler_restart.py. Here: the portal (its
figures and training progress survive, also writes in flight), a run's kernel and its worker
mid-run (the run ends `failed` saying what died, once), the warm workers and the run's worker at
a due cron tick (the tick runs once, the schedule goes on), the apps service (running app servers
keep serving, the API comes back), an app's kernel and its app server (a viewer opens the app
again, also after a preheated kernel died: the app server replaces a dead kernel). Every
deadline is generous and fails only when the thing never happens; the measured times are
printed. Each test waits until what it killed is back, so the platform stays healthy
for the rest of the suite.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_apps import publish
from test_apps_browser import APP_TIMEOUT, login, result_text
from test_portal_usage import counts, service_pid
from test_scheduler_api import NOTEBOOKS, Api
from test_scheduler_restart import scheduler_pid

from conftest import Platform, hub_token

RESTART_SECONDS = 120
"""How long the hub may take to start a killed service again (it takes seconds)."""

WORKER = b"dsml.scheduler.worker"
USER_NICENESS = 10
"""accounts.niceness by default: user code's CPU niceness."""
APP = "faults"
"""The app these tests publish (its own, so no other test's counts move)."""


def wait_for(check: Callable[[], Any], seconds: float, what: str) -> Any:
    """Poll `check()` until it returns something true; fail naming `what` if it never does."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"{what}: not within {seconds} s")


def gone(pid: int) -> bool:
    """Whether process `pid` has ended (a zombie has)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def parent(pid: int) -> int:
    """The parent pid of `pid` (0 once it is gone)."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return 0


def children(pid: int) -> list[int]:
    """Every process below `pid`."""
    found: list[int] = []
    todo = [pid]
    while todo:
        here = todo.pop()
        try:
            kids = [int(p) for p in Path(f"/proc/{here}/task/{here}/children").read_text().split()]
        except OSError:
            continue
        found += kids
        todo += kids
    return found


def cmdline(pid: int) -> bytes:
    """The argument list of `pid` (empty once it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def output_of(pid: int) -> str:
    """Where `pid`'s stdout goes (a run's log for a worker that has a run)."""
    try:
        return os.readlink(f"/proc/{pid}/fd/1")
    except OSError:
        return ""


def killed_and_back(
    platform: Platform,
    module: str,
    folder: str,
    ready: Callable[[], bool],
    meanwhile: Callable[[], None] = lambda: None,
) -> float:
    """kill -9 a managed service, call `meanwhile()`, wait until the hub started a new one
    that answers.

    Returns the seconds it took (printed by the callers).
    """
    pid = service_pid(platform, module, folder)
    assert pid, f"{module} service not found"
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    meanwhile()

    def back() -> bool:
        new = service_pid(platform, module, folder)
        if not new or new == pid:
            return False
        try:
            return ready()
        except httpx.HTTPError:
            return False

    wait_for(back, RESTART_SECONDS, f"the hub did not start {module} again after kill -9")
    return time.monotonic() - killed


def client(platform: Platform, token: str, service: str) -> httpx.Client:
    """An API client of one service with a user's token."""
    return httpx.Client(
        base_url=f"{platform.url}/services/{service}/api/",
        headers={"Authorization": f"token {token}"},
        timeout=60,
    )


@pytest.fixture(scope="module")
def tokens(platform: Platform) -> dict[str, str]:
    """Hub tokens of the users these tests act as."""
    return {name: hub_token(platform, name) for name in ("scientist", "stakeholder", "admin")}


# --------------------------------------------------------------------------- portal


def steady_usage(portal: httpx.Client) -> dict[str, Any]:
    """The usage figures once three reads a second apart agree (nothing is in flight)."""
    reads: list[dict[str, Any]] = []

    def same() -> dict[str, Any] | None:
        r = portal.get("usage")
        assert r.status_code == 200, r.text
        reads.append(counts(r.json()))
        time.sleep(1)
        return reads[-1] if len(reads) >= 3 and reads[-3] == reads[-2] == reads[-1] else None

    return wait_for(same, 90, "the usage figures kept changing")


def test_portal_kill_9_keeps_figures_and_training_progress(
    platform: Platform, tokens: dict[str, str], apps
) -> None:
    """tests/test_portal_usage.py kills an idle portal; here writes are in flight meanwhile."""
    # the apps declared in the settings are published once the apps service is up
    with client(platform, tokens["admin"], "apps") as apps_admin:
        wait_for(
            lambda: (
                "declared-squares"
                in {a["slug"] for a in apps_admin.get("apps", params={"all": "1"}).json()["apps"]}
            ),
            120,
            "the declared app was never published",
        )
    admin = client(platform, tokens["admin"], "portal")
    learner = client(platform, tokens["stakeholder"], "portal")
    notebook = "99-faults.ipynb"
    r = learner.post(
        "training/progress",
        json={"results": [{"notebook": notebook, "exercise": "f.0", "passed": True}]},
    )
    assert r.status_code == 201, r.text
    before = steady_usage(admin)
    learners_before = admin.get("training/learners").json()["learners"]

    # a learner's self-checks keep posting while the portal is killed and restarted
    acknowledged: list[str] = []
    stop = threading.Event()

    def post_attempts() -> None:
        with client(platform, tokens["stakeholder"], "portal") as own:
            n = 0
            while not stop.is_set():
                n += 1
                exercise = f"f.{n}"
                try:
                    r = own.post(
                        "training/progress",
                        json={"notebook": notebook, "exercise": exercise, "passed": n % 2 == 0},
                        timeout=10,
                    )
                except httpx.HTTPError:
                    continue  # refused while it is down: the self-check would say so
                if r.status_code == 201:
                    acknowledged.append(exercise)
                time.sleep(0.05)

    writer = threading.Thread(target=post_attempts)
    writer.start()
    try:
        wait_for(lambda: len(acknowledged) >= 5, 60, "no attempt was recorded before the kill")
        seconds = killed_and_back(
            platform,
            "dsml.portal",
            "portal",
            lambda: admin.get("usage", timeout=10).status_code == 200,
        )
        written = len(acknowledged)
        wait_for(lambda: len(acknowledged) >= written + 5, 60, "no attempt recorded after")
    finally:
        stop.set()
        writer.join(30)
    print(f"portal: back {seconds:.1f} s after kill -9; {len(acknowledged)} attempts recorded")

    after = admin.get("usage").json()
    assert counts(after) == before
    progress = learner.get("training/progress").json()
    rows = {e["exercise"]: e for e in progress["results"] if e["notebook"] == notebook}
    assert "f.0" in rows and rows["f.0"]["passed"] is True
    for exercise in acknowledged:
        row = rows.get(exercise)
        assert row is not None, f"acknowledged attempt {exercise} is missing after the kill"
        n = int(exercise.split(".")[1])
        assert row["passed"] is (n % 2 == 0) and row["attempts"] == 1, row
    # every other learner's rows are as they were
    learners_after = {row["user"]: row for row in admin.get("training/learners").json()["learners"]}
    for row in learners_before:
        if row["user"] != "stakeholder":
            assert learners_after[row["user"]] == row
    admin.close()
    learner.close()


# --------------------------------------------------------------------------- scheduler


FINAL = ("succeeded", "failed", "timed_out", "cancelled", "lost", "skipped")


def one_final_state(run: dict[str, Any]) -> str:
    """The run's final state, checking its history holds exactly one, last."""
    states = [e["state"] for e in run["events"]]
    finals = [s for s in states if s in FINAL]
    assert len(finals) == 1 and states[-1] == run["state"] == finals[0], (run["id"], states)
    return finals[0]


def worker_of(kernel: int) -> int:
    """The scheduler worker that started `kernel` (its parent)."""
    worker = parent(kernel)
    assert WORKER in cmdline(worker), cmdline(worker)
    return worker


def test_kill_9_of_a_kernel_and_of_a_worker_mid_run(platform: Platform, tmp_path: Path) -> None:
    api = Api(platform, "scientist")
    runs = {}
    for what in ("kernel", "worker"):
        job = api.create_job(NOTEBOOKS / "writes_marker.ipynb", name=f"fault: its {what} dies")
        runs[what] = api.start(job, {"marker": str(tmp_path / what), "seconds": 300})
    wait_for(
        lambda: all((tmp_path / w).exists() for w in runs), 120, "the runs never started running"
    )
    kernels = {w: int((tmp_path / w).read_text()) for w in runs}
    workers = {w: worker_of(k) for w, k in kernels.items()}
    # runs compute below the platform's CPU priority (accounts.niceness 10); the scheduler not
    for pid in (*kernels.values(), *workers.values()):
        assert os.getpriority(os.PRIO_PROCESS, pid) == USER_NICENESS, pid
    assert os.getpriority(os.PRIO_PROCESS, scheduler_pid(platform)) == 0
    os.kill(kernels["kernel"], signal.SIGKILL)
    os.kill(workers["worker"], signal.SIGKILL)
    killed = time.monotonic()
    ended = {w: api.wait(run, timeout=120) for w, run in runs.items()}
    print(f"scheduler: kernel and worker deaths recorded in {time.monotonic() - killed:.1f} s")

    by_kernel, by_worker = ended["kernel"], ended["worker"]
    assert by_kernel["state"] == "failed" and by_kernel["failure_kind"] == "infra", by_kernel
    assert by_kernel["error"]["name"] == "DeadKernelError"
    assert by_kernel["message"].startswith("the kernel died while running the notebook")
    assert by_worker["state"] == "failed" and by_worker["failure_kind"] == "infra", by_worker
    assert by_worker["message"].startswith("the run's worker process died")
    # the worker of the dead kernel exits; the kernel of the dead worker does not live on
    wait_for(lambda: gone(workers["kernel"]), 60, "the dead kernel's worker kept running")
    wait_for(lambda: gone(kernels["worker"]), 60, "the dead worker's kernel kept running")
    # one final state each, and it stays
    time.sleep(2)
    for what, run in ended.items():
        again = api.client.get(f"runs/{run['id']}").json()
        assert again["state"] == run["state"] and again["message"] == run["message"]
        assert [e["state"] for e in again["events"]] == ["queued", "starting", "running", "failed"]
        assert one_final_state(again) == "failed"
        assert "\n" not in again["message"], what
    # the cron part of this fault: armed now, checked by the last test of the module
    arm_cron_fault(platform, api, tmp_path, TICK)


def warm_workers(platform: Platform) -> list[int]:
    """The scheduler's pre-started workers (waiting for a run: no run's log is theirs yet)."""
    scheduler = scheduler_pid(platform)
    assert scheduler, "scheduler service not found"
    runs = str(platform.datadir.root / "scheduler" / "runs")
    return [
        pid
        for pid in children(scheduler)
        if WORKER in cmdline(pid) and parent(pid) == scheduler and runs not in output_of(pid)
    ]


TICK: dict[str, Any] = {}
"""What the cron fault of this module did (set by arm_cron_fault, read by the last test)."""


def arm_cron_fault(platform: Platform, api: Api, tmp_path: Path, state: dict[str, Any]) -> None:
    """A cron job every minute; at its next tick, kill -9 the warm workers just before it and
    the tick's own worker once it runs (in a thread, while the apps tests go on).

    What it did goes into `state` (the thread adds to it as it goes).
    """
    marker = tmp_path / "cron"
    job = api.create_job(
        NOTEBOOKS / "writes_marker.ipynb",
        name="fault: cron tick",
        schedule="* * * * *",
        parameters={"marker": str(marker), "seconds": 3},
    )
    tick = datetime.fromisoformat(job["next_run_at"].rstrip("Z")).replace(tzinfo=UTC)
    state.update(job=job, tick=job["next_run_at"], error=None)

    def run() -> None:
        try:
            wait = (tick - datetime.now(UTC)).total_seconds() - 1.5
            time.sleep(max(wait, 0))
            warm = warm_workers(platform)
            state["warm_kernels"] = [k for w in warm for k in children(w)]
            for pid in warm:
                os.kill(pid, signal.SIGKILL)
            state["warm_killed"] = warm
            with httpx.Client(base_url=api.client.base_url, headers=api.client.headers) as own:

                def started_or_ended() -> bool:
                    if marker.exists():
                        return True
                    found = own.get(f"jobs/{job['id']}/runs").json()["runs"]
                    return any(r["state"] not in ("queued", "starting", "running") for r in found)

                wait_for(started_or_ended, 180, "the tick's run never ran")
            state["worker_killed"] = None
            if marker.exists():  # else the warm workers' kill ended it already
                worker = worker_of(int(marker.read_text()))
                os.kill(worker, signal.SIGKILL)
                state["worker_killed"] = worker
        except BaseException as e:  # noqa: BLE001 - re-raised by the test that checks
            state["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    state["thread"] = thread


# --------------------------------------------------------------------------- apps


def app_server(platform: Platform, slug: str) -> int | None:
    """The pid of this platform's app server of `slug`."""
    name = f"JUPYTERHUB_SERVER_NAME=app-{slug}".encode()
    data = str(platform.datadir.root).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or b"dsml.apps.server" not in cmdline(int(entry.name)):
            continue
        try:
            env = (entry / "environ").read_bytes().split(b"\x00")
        except OSError:
            continue
        if name in env and any(data in v for v in env):
            return int(entry.name)
    return None


def app_kernels(server: int) -> dict[str, int]:
    """The app server's kernels: kernel id -> pid."""
    found = {}
    for pid in children(server):
        m = re.search(rb"kernel-([0-9a-f-]{36})\.json", cmdline(pid))
        if m:
            found[m.group(1).decode()] = pid
    return found


@pytest.fixture(scope="module")
def apps(platform: Platform, tokens: dict[str, str]):
    """Apps API clients of the owner and a viewer; the module's app, published and running."""
    owner = client(platform, tokens["scientist"], "apps")
    viewer = client(platform, tokens["stakeholder"], "apps")
    r = publish(owner, slug=APP, title="Faults", share={"users": ["stakeholder"]})
    assert r.status_code == 201, r.text
    yield owner, viewer
    owner.delete(f"apps/{APP}")
    owner.close()
    viewer.close()


def app_running(owner: httpx.Client) -> bool:
    """Whether the hub says the app's server is up."""
    return owner.get(f"apps/{APP}/status").json()["state"] == "running"


def test_apps_service_kill_9_leaves_app_servers_serving(
    platform: Platform, apps, tokens: dict[str, str]
) -> None:
    owner, viewer = apps
    assert owner.post(f"apps/{APP}/start").status_code == 200
    wait_for(lambda: app_running(owner), 180, "the app never started")
    server = app_server(platform, APP)
    assert server, "app server not found"
    record = owner.get(f"apps/{APP}").json()
    app_url = platform.url + owner.get(f"apps/{APP}/status").json()["url"]
    as_viewer = {"Authorization": f"token {tokens['stakeholder']}"}

    def while_down() -> None:
        # the app server is not the apps service's child: it keeps serving its viewers
        assert owner.get("apps", timeout=10).status_code != 200, "the apps service answered"
        page = httpx.get(app_url, headers=as_viewer, timeout=120)
        assert page.status_code == 200 and '"kernelId"' in page.text

    seconds = killed_and_back(
        platform,
        "dsml.apps",
        "apps",
        lambda: owner.get("apps", timeout=10).status_code == 200,
        while_down,
    )
    print(f"apps service: back {seconds:.1f} s after kill -9; its app server served meanwhile")
    assert app_server(platform, APP) == server
    # the restarted service knows everything it knew, and the viewer's link works
    assert owner.get(f"apps/{APP}").json() == record
    assert app_running(owner)
    r = viewer.get(f"apps/{APP}/status")
    assert r.status_code == 200 and r.json()["state"] == "running"
    link = httpx.get(f"{platform.url}/services/apps/a/{APP}", headers=as_viewer, timeout=60)
    assert link.status_code == 302, link.text[:300]
    assert link.headers["location"].endswith(f"/user/scientist/app-{APP}/")


def slide_to(page, value: int) -> None:  # type: ignore[no-untyped-def]
    """Move the app's slider one step right and wait for the result the kernel computes."""
    handle = page.locator(".noUi-handle").first
    handle.focus()
    handle.press("ArrowRight")
    page.wait_for_function(
        f"document.querySelector('b.result').textContent === 'result: {value}'", timeout=60_000
    )


def open_app(page, platform: Platform) -> str:  # type: ignore[no-untyped-def]
    """Open the app's stable link (through the wake page if needed); the page's kernel id."""
    page.goto(platform.url + f"/services/apps/a/{APP}", wait_until="commit")
    page.wait_for_url(re.compile(rf".*/user/scientist/app-{APP}/.*"), timeout=APP_TIMEOUT)
    assert result_text(page) == "result: 9"
    found = re.search(r'"kernelId":\s*"([0-9a-f-]{36})"', page.content())
    assert found, "the app's page names no kernel"
    return found.group(1)


def test_a_viewer_opens_the_app_again_after_its_kernel_died(
    platform: Platform, apps, browser
) -> None:
    owner, _ = apps
    wait_for(lambda: app_running(owner), 180, "the app is not running")
    page = login(browser, platform, "stakeholder")
    kernel = open_app(page, platform)
    slide_to(page, 16)
    server = app_server(platform, APP)
    assert server
    # an app server and its kernels run below the platform's CPU priority too
    assert os.getpriority(os.PRIO_PROCESS, server) == USER_NICENESS
    assert {os.getpriority(os.PRIO_PROCESS, k) for k in app_kernels(server).values()} == {
        USER_NICENESS
    }
    os.kill(app_kernels(server)[kernel], signal.SIGKILL)
    killed = time.monotonic()
    page.reload()
    assert result_text(page) == "result: 9"
    slide_to(page, 16)
    print(f"app kernel: the viewer's page works again {time.monotonic() - killed:.1f} s after")
    page.context.close()


def test_a_viewer_opens_the_app_after_its_preheated_kernel_died(
    platform: Platform, apps, browser
) -> None:
    owner, _ = apps
    wait_for(lambda: app_running(owner), 180, "the app is not running")
    server = app_server(platform, APP)
    assert server
    # the pool holds a kernel with the notebook run (the earlier tests' pages refilled it)
    ready = wait_for(lambda: app_kernels(server), 120, "the app server holds no kernel")
    time.sleep(3)  # a refill started by the last page has run the notebook
    for pid in app_kernels(server).values():
        os.kill(pid, signal.SIGKILL)
    page = login(browser, platform, "stakeholder")
    killed = time.monotonic()
    page.goto(platform.url + f"/services/apps/a/{APP}", wait_until="commit")
    page.wait_for_selector("b.result", timeout=30_000)
    slide_to(page, 16)
    print(
        f"app pool: {len(ready)} killed; a new page works {time.monotonic() - killed:.1f} s after"
    )
    page.context.close()


def test_a_viewer_opens_the_app_again_after_its_server_died(
    platform: Platform, apps, browser
) -> None:
    owner, _ = apps
    wait_for(lambda: app_running(owner), 180, "the app is not running")
    server = app_server(platform, APP)
    assert server
    kernels = list(app_kernels(server).values())
    os.kill(server, signal.SIGKILL)
    killed = time.monotonic()
    # the hub notices (its poll) and says so; the kernels do not outlive their server
    wait_for(lambda: not app_running(owner), 120, "the hub never noticed the app server died")
    noticed = time.monotonic() - killed
    wait_for(lambda: all(gone(k) for k in kernels), 60, "the app's kernels outlived it")
    page = login(browser, platform, "stakeholder")
    open_app(page, platform)
    slide_to(page, 16)
    print(
        f"app server: the hub noticed in {noticed:.1f} s; "
        f"the viewer has the app again {time.monotonic() - killed:.1f} s after kill -9"
    )
    page.context.close()
    assert app_server(platform, APP) not in (None, server)


# --------------------------------------------------------------------------- cron, checked


def test_the_tick_after_worker_kills_ran_once_and_the_schedule_goes_on(platform: Platform) -> None:
    assert TICK, "the cron fault was not armed (the mid-run test failed first)"
    api = Api(platform, "scientist")
    job = TICK["job"]
    try:
        TICK["thread"].join(240)
        assert not TICK["thread"].is_alive(), "the cron fault never came to an end"
        if TICK["error"] is not None:
            raise TICK["error"]

        def runs() -> list[dict[str, Any]]:
            return api.client.get(f"jobs/{job['id']}/runs", params={"limit": 100}).json()["runs"]

        def when(value: str | None) -> datetime | None:
            return datetime.fromisoformat(value.rstrip("Z")) if value else None

        tick = when(TICK["tick"])

        def settled() -> list[dict[str, Any]] | None:
            found = runs()
            done = [
                r
                for r in found
                if r["attempt"] == 1
                and (when(r["scheduled_for"]) or tick) > tick
                and r["state"] == "succeeded"
            ]
            return found if done else None

        found = wait_for(settled, 180, "no tick after the faulted one succeeded")
        ticks = [r["scheduled_for"] for r in found if r["attempt"] == 1]
        assert len(ticks) == len(set(ticks)), f"a tick ran twice: {ticks}"
        faulted = [r for r in found if when(r["scheduled_for"]) == tick]
        assert len(faulted) == 1, faulted
        assert faulted[0]["state"] == "failed", faulted[0]
        assert "died" in faulted[0]["message"], faulted[0]["message"]
        assert not [r for r in found if r["state"] == "lost"]
        for run in found:
            if run["state"] in FINAL:
                one_final_state(api.client.get(f"runs/{run['id']}").json())
        # the warm workers killed before the tick took their kernels with them
        for pid in TICK["warm_killed"] + TICK["warm_kernels"]:
            wait_for(lambda pid=pid: gone(pid), 60, f"process {pid} outlived its worker")
        print(
            f"cron: {len(TICK['warm_killed'])} warm worker(s) killed before the tick at "
            f"{TICK['tick']}, its run's worker after; {len(ticks)} tick(s) ran once each"
        )
    finally:
        api.client.patch(f"jobs/{job['id']}", json={"paused": True})
        for r in api.client.get(f"jobs/{job['id']}/runs").json()["runs"]:
            if r["state"] in ("queued", "starting", "running"):
                api.client.post(f"runs/{r['id']}/cancel")
