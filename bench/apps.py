"""Apps benchmark: a published app through the hub against plain Voila and preheated Voila.

The same small ipywidgets notebook (notebooks/widgets_app.ipynb, kernel dsml-python-minimal)
is served side by side in one run by:

plain voila      `voila NOTEBOOK` (a kernel started and the notebook run for every visit)
preheated voila  `voila NOTEBOOK --preheat_kernel=True --pool_size=P` (pre-run kernels)
dsml app         the platform (`dsml up`, see launch.py): the notebook published through the apps
                 service's REST API, opened by a signed-in viewer at its stable link
                 /services/apps/a/<slug> (redirects to the owner's app server)
dsml app, direct the same app at its server's URL /user/<owner>/app-<slug>/ (sequential only:
                 shows what the stable link's hop costs)

Both Voila peers run the platform's Voila (the app server's) with --strip_sources=True, as the
app server does, so every runner sends the same page.

A visit is what a browser does to show the app: GET the page (following redirects, cookies
kept) until the whole body has arrived ("render": Voila sends the page once the notebook has run),
then open the page's kernel websocket and wait for the kernel_info_reply ("ready": the widgets
can talk to the kernel). Static assets (JavaScript bundles) are not fetched: a browser caches
them. After a visit the kernel is shut down the way the page does when it is closed, where the
server allows it (plain Voila does; the app server may refuse, it manages its kernels itself).

sequential   N visits per runner, one at a time, the runners taking turns (the first rotates),
             a pause between visits as between real viewers; one warm-up visit each first.
concurrent   V viewers at once (one client each), one runner at a time, after the machine
             has settled (pools refilled).
stopped app  the app's server stopped through the API, then a viewer opens the stable link:
             time until the app page has rendered and its kernel is ready (S times).

Nothing here asserts: every figure is printed and the raw data goes to bench/results/.

    .venv/bin/python bench/apps.py           # about 4 minutes
    .venv/bin/python bench/apps.py --quick   # fewer visits
    .venv/bin/python bench/run.py --only apps
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import websocket
from launch import (
    BENCH,
    Platform,
    Progress,
    bench_main,
    free_port,
    print_report,
    progress,
    running_platform,
)

NOTEBOOK = BENCH / "notebooks" / "widgets_app.ipynb"
ENVIRONMENT = "python-minimal"
OWNER = "scientist"
VIEWER = "stakeholder"
PLAIN = "voila (a kernel per visit)"
PREHEATED = "voila --preheat_kernel"
OURS = "dsml app (stable link)"
DIRECT = "dsml app (server URL)"
NAMES = ("apps",)
"""The benchmarks this module runs (what run.py's --only accepts)."""

APP_PAGE = re.compile(r'"kernelId":\s*"([0-9a-f-]{36})"')
"""A Voila page names its kernel in its page config; a progress or error page does not."""
BASE_URL = re.compile(r'"baseUrl":\s*"([^"]*)"')


@dataclass
class Options:
    """Sizes of the benchmark (the defaults are the full run; --quick shrinks them)."""

    visits: int = 20
    viewers: int = 20
    stopped_opens: int = 3
    pool_size: int = 1
    gap_seconds: float = 1.0

    @classmethod
    def quick(cls) -> Options:
        """Few visits, for a smoke run."""
        return cls(visits=5, viewers=10, stopped_opens=1)


# statistics


def summary(samples: Iterable[float | None]) -> dict[str, float | int | None]:
    """n, p50, p95, min, max (percentiles interpolate between the nearest values)."""
    values = sorted(v for v in samples if v is not None)
    if not values:
        return {"n": 0, "p50": None, "p95": None, "min": None, "max": None}
    p95 = (
        values[0]
        if len(values) == 1
        else statistics.quantiles(values, n=20, method="inclusive")[18]
    )
    return {
        "n": len(values),
        "p50": statistics.median(values),
        "p95": p95,
        "min": values[0],
        "max": values[-1],
    }


def settle(max_seconds: float = 60, idle: float = 0.85) -> float:
    """Wait until the CPUs are mostly idle (pools refilled, kernels gone); return the wait."""
    started = time.monotonic()

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return fields[3] + fields[4], sum(fields)  # idle + iowait, total

    while time.monotonic() - started < max_seconds:
        idle0, total0 = sample()
        time.sleep(1)
        idle1, total1 = sample()
        if total1 > total0 and (idle1 - idle0) / (total1 - total0) >= idle:
            break
    return round(time.monotonic() - started, 1)


# one visit


def _cookie_header(client: httpx.Client, path: str) -> str:
    """The Cookie header a browser sends with a websocket to `path` (cookies of that path)."""
    return "; ".join(
        f"{c.name}={c.value}" for c in client.cookies.jar if path.startswith(c.path or "/")
    )


def _kernel_info(client: httpx.Client, page_url: httpx.URL, base: str, kernel: str) -> None:
    """Open the page's kernel websocket and wait for the kernel_info_reply."""
    path = f"{base}api/kernels/{kernel}/channels"
    url = f"ws://{page_url.host}:{page_url.port}{path}?session_id={uuid.uuid4()}"
    ws = websocket.create_connection(
        url, timeout=60, header=[f"Cookie: {_cookie_header(client, path)}"]
    )
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
        ws.send(
            json.dumps(
                {
                    "header": header,
                    "parent_header": {},
                    "metadata": {},
                    "content": {},
                    "channel": "shell",
                    "buffers": [],
                }
            )
        )
        while True:
            msg = json.loads(ws.recv())
            if (msg.get("parent_header") or {}).get("msg_id") == msg_id and msg.get(
                "msg_type"
            ) == "kernel_info_reply":
                return
    finally:
        ws.close()


def visit(client: httpx.Client, url: str, deadline: float = 180, poll: float = 0.25) -> dict:
    """Open the app at `url` as a browser does; seconds to first byte, render and ready.

    A page without a kernel (a waking app's progress page) is asked for again every `poll`
    seconds, as that page itself does, until the app page comes.
    """
    started = time.perf_counter()
    pages = 0
    while True:
        pages += 1
        try:
            with client.stream("GET", url, follow_redirects=True) as r:
                first_byte = time.perf_counter() - started
                body = r.read().decode(errors="replace")
        except httpx.HTTPError as e:
            return {"error": f"{type(e).__name__}: {e}"}
        found = APP_PAGE.search(body) if r.status_code == 200 else None
        if found:
            break
        if time.perf_counter() - started > deadline:
            return {"error": f"no app page within {deadline:.0f} s (last HTTP {r.status_code})"}
        time.sleep(poll)
    render = time.perf_counter() - started
    kernel = found.group(1)
    base_match = BASE_URL.search(body)
    base = base_match.group(1) if base_match else "/"
    try:
        _kernel_info(client, r.url, base, kernel)
    except Exception as e:  # noqa: BLE001 - a refused websocket is a figure, not a crash
        return {"render": render, "first_byte": first_byte, "error": f"kernel: {e}"}
    ready = time.perf_counter() - started
    # what the page does when it is closed; a server that refuses keeps its own kernels
    closed: int | str
    try:
        xsrf = next((c.value for c in client.cookies.jar if c.name == "_xsrf" and
                     base.startswith(c.path or "/")), "")  # fmt: skip
        if not xsrf:  # plain Voila sets none; the page's JavaScript makes one, as we do here
            xsrf = uuid.uuid4().hex
            client.cookies.set("_xsrf", xsrf, domain=r.url.host, path=base)
        # Voila's page sends this beacon when it is closed (both Voila and the app server
        # serve it); DELETE api/kernels/ID is refused by the app server (viewers may not)
        url = f"{r.url.scheme}://{r.url.netloc.decode()}{base}voila/api/shutdown/{kernel}"
        closed = client.post(url, headers={"X-XSRFToken": xsrf}, timeout=10).status_code
    except httpx.HTTPError as e:
        closed = type(e).__name__
    return {
        "first_byte": first_byte,
        "render": render,
        "ready": ready,
        "pages": pages,
        "kernel_shutdown": closed,
    }


# the runners


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (kernels run in sessions of their own, not in its group)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = (entry / "stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


@contextlib.contextmanager
def voila_server(
    name: str, args: list[str], platform: Platform, work: Path, say: Progress
) -> Iterator[str]:
    """Run the platform's Voila on the bench notebook on a free port; yield its URL."""
    folder = work / name.replace(" ", "-")
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(NOTEBOOK, folder / NOTEBOOK.name)
    port = free_port()
    log = folder / "voila.log"
    voila = Path(sys.executable).parent / "voila"
    command = [str(voila), NOTEBOOK.name, "--no-browser", f"--port={port}"]
    command += ["--Voila.ip=127.0.0.1", "--strip_sources=True", *args]
    env = {**os.environ, "JUPYTER_PATH": str(platform.jupyter_path)}
    with open(log, "w") as out:
        proc = subprocess.Popen(
            command, cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited {proc.returncode}: {log.read_text()[-1500:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "voila/static/", timeout=2).status_code < 500:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not listen within 60 s: {log.read_text()[-1500:]}")
            time.sleep(0.2)
        say(f"{name} listening on port {port}")
        yield url
    finally:
        below = _descendants(proc.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for pid in below:  # kernels Voila left behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def login(platform: Platform, name: str) -> httpx.Client:
    """A client signed in to the hub as `name` through the login form (cookies kept)."""
    client = httpx.Client(base_url=platform.url, timeout=180)
    client.get("/hub/login")
    r = client.post(
        "/hub/login",
        data={
            "username": name,
            "password": platform.users[name]["password"],
            "_xsrf": client.cookies.get("_xsrf"),
        },
    )
    if r.status_code != 302:
        client.close()
        raise RuntimeError(f"login as {name} failed: HTTP {r.status_code} {r.text[:200]}")
    return client


class AppsApi:
    """The apps service's REST API with a user's hub token."""

    def __init__(self, platform: Platform, user: str):
        self.client = httpx.Client(
            base_url=platform.url + "/services/apps/api",
            headers={"Authorization": f"token {platform.user_token(user)}"},
            timeout=120,
        )

    def call(self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = ()) -> Any:
        """One call; a status other than 2xx (or one in `ok`) raises with the service's message."""
        r = self.client.request(method, path, json=body)
        if r.status_code >= 300 and r.status_code not in ok:
            raise RuntimeError(f"{method} apps{path}: HTTP {r.status_code} {r.text[:300]}")
        return r.json() if r.content and "json" in r.headers.get("content-type", "") else None

    def missing(self) -> str | None:
        """Why the apps service cannot be measured (None when it answers)."""
        try:
            r = self.client.get("/apps")
        except httpx.HTTPError as e:
            return f"{type(e).__name__}: {e}"
        if r.status_code != 200:
            return f"GET /services/apps/api/apps answered HTTP {r.status_code}"
        return None

    def wait_state(self, slug: str, state: str, timeout: float = 120) -> dict:
        """Poll the app's status until it is `state`."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.call("GET", f"/apps/{slug}/status")
            if status.get("state") == state:
                return status
            if time.monotonic() > deadline:
                raise RuntimeError(f"app {slug} not {state} within {timeout:.0f} s: {status}")
            time.sleep(0.25)

    def close(self) -> None:
        """Close the HTTP client."""
        self.client.close()


def publish(api: AppsApi, slug: str) -> dict:
    """Publish the bench notebook as app `slug`, shared with the viewer."""
    body = {
        "notebook": json.loads(NOTEBOOK.read_text()),
        "notebook_path": f"bench/{NOTEBOOK.name}",
        "title": "Bench slider",
        "description": "apps benchmark",
        "environment": ENVIRONMENT,
        "slug": slug,
        "share": {"users": [VIEWER]},
    }
    return api.call("POST", "/apps", body)


# the measurements


def sequential(
    runners: dict[str, tuple[Callable[[], httpx.Client], str]], opts: Options, say: Progress
) -> dict[str, Any]:
    """N visits per runner, one at a time, taking turns; one warm-up visit each first."""
    clients = {name: make() for name, (make, _) in runners.items()}
    try:
        for name, (_, url) in runners.items():
            warm = visit(clients[name], url)
            if "error" in warm:
                raise RuntimeError(f"{name}: warm-up visit failed: {warm['error']}")
        settle()
        names = list(runners)
        samples: dict[str, list[dict]] = {name: [] for name in names}
        for i in range(opts.visits):
            order = names[i % len(names) :] + names[: i % len(names)]
            for name in order:
                samples[name].append(visit(clients[name], runners[name][1]))
                time.sleep(opts.gap_seconds)
            say(f"sequential visits: {i + 1}/{opts.visits}")
        return {name: _figures(rows) for name, rows in samples.items()}
    finally:
        for client in clients.values():
            client.close()


def concurrent(
    make: Callable[[], httpx.Client], url: str, viewers: int, say: Progress
) -> dict[str, Any]:
    """`viewers` visits at once, each from its own client (signed in beforehand)."""
    clients = [make() for _ in range(viewers)]
    warm_errors = []
    for client in clients:  # sign-in and OAuth outside the timing, as for a returning viewer
        warm = visit(client, url)
        if "error" in warm:
            # a figure, not a crash: Voila 0.5 alone hangs on some opens (bench/README.md)
            warm_errors.append(warm["error"])
    waited = settle()
    results: list[dict] = [{} for _ in clients]
    barrier = threading.Barrier(viewers)

    def one(i: int) -> None:
        barrier.wait()
        results[i] = visit(clients[i], url)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(viewers)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    for client in clients:
        client.close()
    figures = _figures(results)
    figures.update({"wall_seconds": wall, "settled_seconds": waited, "warmup_errors": warm_errors})
    say(f"  {viewers} at once: render p50 {_s(figures['render']['p50'])}, wall {_s(wall)}")
    return figures


def _figures(rows: list[dict]) -> dict[str, Any]:
    errors = [r["error"] for r in rows if "error" in r]
    return {
        "render": summary(r.get("render") for r in rows if "error" not in r),
        "ready": summary(r.get("ready") for r in rows if "error" not in r),
        "first_byte": summary(r.get("first_byte") for r in rows if "error" not in r),
        "errors": errors,
        "samples": rows,
    }


def stopped_opens(api: AppsApi, make: Callable[[], httpx.Client], slug: str, url: str, n: int):
    """Stop the app's server, then time a viewer opening its stable link (n times)."""
    rows = []
    for _ in range(n):
        api.call("POST", f"/apps/{slug}/stop")
        api.wait_state(slug, "stopped")
        settle(30)
        client = make()
        try:
            rows.append(visit(client, url))
        finally:
            client.close()
    return _figures(rows)


def run(opts: Options, work: Path, say: Progress = progress) -> dict[str, Any]:
    """Start the platform and both Voila peers, measure, stop everything; return the figures."""
    results: dict[str, Any] = {"options": opts.__dict__, "notebook": NOTEBOOK.name}
    with contextlib.ExitStack() as stack:
        platform = stack.enter_context(running_platform(work / "platform", capacity=1, say=say))
        plain = stack.enter_context(voila_server(PLAIN, [], platform, work, say))
        preheated = stack.enter_context(
            voila_server(
                PREHEATED,
                ["--preheat_kernel=True", f"--pool_size={opts.pool_size}"],
                platform,
                work,
                say,
            )
        )
        runners: dict[str, tuple[Callable[[], httpx.Client], str]] = {
            PLAIN: (lambda: httpx.Client(base_url=plain, timeout=180), plain),
            PREHEATED: (lambda: httpx.Client(base_url=preheated, timeout=180), preheated),
        }
        api = AppsApi(platform, OWNER)
        stack.callback(api.close)
        missing = api.missing()
        slug = f"bench-{uuid.uuid4().hex[:8]}"
        if missing:
            results["apps_service"] = f"not measured: the apps service is not there yet ({missing})"
            say(results["apps_service"])
        else:
            say(f"publishing {NOTEBOOK.name} as app {slug}")
            published = publish(api, slug)
            results["published"] = {k: published.get(k) for k in ("url", "version")}
            stable = f"{platform.url}/services/apps/a/{slug}"
            direct = f"{platform.url}/user/{OWNER}/app-{slug}/"

            def viewer() -> httpx.Client:
                return login(platform, VIEWER)

            runners[OURS] = (viewer, stable)
            runners[DIRECT] = (viewer, direct)
        say(f"sequential: {opts.visits} visits each, taking turns")
        results["sequential"] = sequential(runners, opts, say)
        results["concurrent"] = {}
        for name, (make, url) in runners.items():
            if name == DIRECT:
                continue
            say(f"concurrent: {opts.viewers} viewers at once on {name}")
            results["concurrent"][name] = concurrent(make, url, opts.viewers, say)
        if not missing:
            say(f"stopped app: {opts.stopped_opens} opens of the stable link")
            results["stopped"] = stopped_opens(
                api, runners[OURS][0], slug, runners[OURS][1], opts.stopped_opens
            )
            with contextlib.suppress(Exception):
                api.call("DELETE", f"/apps/{slug}")
    return results


# the printed summary


def _s(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f} s"


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if not a or not b else a / b


def report(results: dict[str, Any]) -> list[str]:
    """The summary lines of the apps benchmark."""
    opts = results["options"]
    lines = [
        f"## apps: {results['notebook']} (ipywidgets, kernel dsml-{ENVIRONMENT}); render = whole "
        "page received, ready = + kernel_info over the page's websocket",
    ]
    if results.get("apps_service"):
        lines.append(results["apps_service"])
    blocks = [
        (f"sequential, {opts['visits']} visits each", results.get("sequential") or {}),
        (f"{opts['viewers']} concurrent viewers", results.get("concurrent") or {}),
    ]
    for title, table in blocks:
        lines.append(f"{title}:")
        lines.append(
            f"  {'runner':<30}{'render p50':>12}{'p95':>10}{'ready p50':>12}{'p95':>10}  errors"
        )
        for name, row in table.items():
            lines.append(
                f"  {name:<30}{_s(row['render']['p50']):>12}{_s(row['render']['p95']):>10}"
                f"{_s(row['ready']['p50']):>12}{_s(row['ready']['p95']):>10}  "
                f"{len(row['errors'])}{' ' + row['errors'][0][:80] if row['errors'] else ''}"
                + (
                    f" (+{len(row['warmup_errors'])} of the warm-up visits)"
                    if row.get("warmup_errors")
                    else ""
                )
            )
        ours = table.get(OURS)
        if ours:
            for stat in ("p50", "p95"):
                pre = _ratio(ours["ready"][stat], table[PREHEATED]["ready"][stat])
                plain = _ratio(table[PLAIN]["ready"][stat], ours["ready"][stat])
                lines.append(
                    f"  ready {stat}: ours / preheated voila = "
                    f"{'n/a' if pre is None else f'{pre:.2f}'} (goal <= 2: "
                    f"{'n/a' if pre is None else 'met' if pre <= 2 else 'NOT met'}); "
                    f"plain voila / ours = {'n/a' if plain is None else f'{plain:.1f}'}x "
                    f"(goal >= 10x: "
                    f"{'n/a' if plain is None else 'met' if plain >= 10 else 'NOT met'})"
                )
    stopped = results.get("stopped")
    if stopped:
        lines.append(
            f"stopped app, stable link -> app ready ({stopped['ready']['n']} opens): "
            f"p50 {_s(stopped['ready']['p50'])}, max {_s(stopped['ready']['max'])}; "
            f"render p50 {_s(stopped['render']['p50'])}"
            + (f"; errors: {stopped['errors']}" if stopped["errors"] else "")
        )
    return [line.rstrip() for line in lines]


def main(argv: list[str] | None = None) -> int:
    """Run the apps benchmark alone: print the summary, save the raw figures."""
    parser = argparse.ArgumentParser(description="apps: dsml app vs plain and preheated Voila")
    parser.add_argument("--quick", action="store_true", help="fewer visits and viewers")
    parser.add_argument("--visits", type=int, help="sequential visits per runner (20)")
    parser.add_argument("--viewers", type=int, help="concurrent viewers (20)")
    parser.add_argument("--pool-size", type=int, help="preheated Voila's pool size (1)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    opts = Options.quick() if args.quick else Options()
    for field in ("visits", "viewers", "pool_size"):
        if getattr(args, field) is not None:
            setattr(opts, field, getattr(args, field))
    return bench_main(
        "apps",
        args.keep,
        lambda work: run(opts, work),
        lambda results, info, out: print_report("apps", info, report(results), out),
    )


if __name__ == "__main__":
    sys.exit(main())
