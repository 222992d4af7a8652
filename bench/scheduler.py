"""Scheduler benchmarks: our scheduler service against the Papermill CLI and jupyter-scheduler.

Four measurements, each on a real platform started with `dsml up` (see launch.py):

latency     a trivial 2-cell notebook, submit -> finished, N runs one at a time, interleaved
            with the peers so machine load hits every runner alike: our service through its
            REST API (create the job once, POST runs, poll GET runs/<id> every 50 ms), the
            `papermill` CLI from the platform's virtualenv and from a clean one, and
            jupyter-scheduler's own execution path (jupyter_scheduler_driver.py).
            Then N more runs of ours back to back (the next submitted as soon as one ends, so
            the pre-started worker pool has no time to refill), a per-phase breakdown of every
            run from its events and the worker log, and an in-process profile of a worker.
throughput  M runs submitted at once; jobs/minute with scheduler.capacity 1 and 2 (one
            platform each), against the Papermill CLI with 1 and 2 processes side by side.
scale       200 jobs on `* * * * *` created through the API fire for 3 minutes on capacity 2:
            cron lag = created_at - scheduled_for of every record the ticks made; then every
            job is paused and the still-queued runs are cancelled.
listing     10,000 runs in one job (written with Store.create_run by seed_runs.py): time to
            page through all of them 100 at a time, and the first page of GET runs.

Nothing here asserts: every figure is printed, and the raw data goes to bench/results/.
"""

from __future__ import annotations

import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from launch import (
    BENCH,
    Platform,
    Progress,
    ensure_venv,
    installed_version,
    running_platform,
)

NOTEBOOK = BENCH / "notebooks" / "trivial.ipynb"
KERNEL = "dsml-python-minimal"
ENVIRONMENT = "python-minimal"
USER = "scientist"
ACTIVE = ("queued", "starting", "running")
POLL_SECONDS = 0.05
JUPYTER_SCHEDULER = "jupyter-scheduler>=2.12,<2.13"
PAPERMILL = "papermill>=2.6,<3"
OURS = "dsml scheduler (REST API)"
BACK_TO_BACK = "dsml scheduler, back to back"
SHORT = {
    OURS: "ours",
    "papermill CLI (platform venv)": "papermill",
    "papermill CLI (clean venv)": "papermill-clean",
    "jupyter-scheduler": "jupyter-scheduler",
    BACK_TO_BACK: "back-to-back",
}
"""Names of the latency runners in progress lines."""
NAMES = ("latency", "throughput", "scale", "listing")
"""The benchmarks this module runs, in the order `--only` accepts them."""


@dataclass
class Options:
    """Sizes of the benchmarks (the defaults are the full run; --quick shrinks them)."""

    latency_runs: int = 10
    throughput_runs: int = 20
    scale_jobs: int = 200
    scale_seconds: float = 180.0
    listing_runs: int = 10_000
    page_size: int = 100

    @classmethod
    def quick(cls) -> Options:
        """Few iterations, for a smoke run (run.py skips scale unless --only names it)."""
        return cls(
            latency_runs=3, throughput_runs=6, scale_jobs=50, scale_seconds=90, listing_runs=2_000
        )


# statistics


def summary(samples: Iterable[float | None]) -> dict[str, float | int | None]:
    """n, median, p90, p95, min, max (percentiles interpolate between the nearest values)."""
    values = sorted(v for v in samples if v is not None)
    if not values:
        return {"n": 0, "median": None, "p90": None, "p95": None, "min": None, "max": None}
    if len(values) == 1:
        p90 = p95 = values[0]
    else:
        p90 = statistics.quantiles(values, n=10, method="inclusive")[8]
        p95 = statistics.quantiles(values, n=20, method="inclusive")[18]
    return {
        "n": len(values),
        "median": statistics.median(values),
        "p90": p90,
        "p95": p95,
        "min": values[0],
        "max": values[-1],
    }


def _utc(stamp: str) -> float:
    """Epoch seconds of an API timestamp (ISO 8601, naive UTC with a Z)."""
    return datetime.fromisoformat(stamp.rstrip("Z")).replace(tzinfo=UTC).timestamp()


def _load() -> float:
    return round(os.getloadavg()[0], 2)


# the service's REST API


class SchedulerApi:
    """A user's client of /services/scheduler/api/ (synchronous: the benchmark waits anyway)."""

    def __init__(self, platform: Platform, user: str = USER):
        self.platform = platform
        self.token = platform.user_token(user)
        self.client = httpx.Client(
            base_url=platform.url + "/services/scheduler/api/",
            headers={"Authorization": f"token {self.token}"},
            timeout=120,
        )

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """Call the API; raise with the service's message on an error status."""
        r = self.client.request(method, path, json=body)
        if r.status_code >= 400:
            raise RuntimeError(f"{method} {path}: HTTP {r.status_code} {r.text[:300]}")
        return r.json() if r.content else None

    def create_job(self, name: str, **fields: Any) -> dict[str, Any]:
        """A job running the trivial notebook in python-minimal, no retries."""
        body = {
            "name": name,
            "notebook": json.loads(NOTEBOOK.read_text()),
            "notebook_name": NOTEBOOK.name,
            "environment": ENVIRONMENT,
            "retries": 0,
            **fields,
        }
        return self.call("POST", "jobs", body)

    def close(self) -> None:
        """Close the HTTP client."""
        self.client.close()


@contextmanager
def scheduler_api(platform: Platform) -> Iterator[SchedulerApi]:
    """A SchedulerApi for the demo data scientist, closed at the end."""
    api = SchedulerApi(platform)
    try:
        yield api
    finally:
        api.close()


# runners of one notebook


def run_ours(api: SchedulerApi, job_id: int) -> dict[str, Any]:
    """POST a run, poll GET runs/<id> every 50 ms until it is final; time it."""
    submitted = time.time()
    t0 = time.perf_counter()
    run = api.call("POST", f"jobs/{job_id}/runs", {})
    post = time.perf_counter() - t0
    while run["state"] in ACTIVE:
        time.sleep(POLL_SECONDS)
        run = api.call("GET", f"runs/{run['id']}")
    seconds = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "ok": run["state"] == "succeeded",
        "state": run["state"],
        "post_seconds": post,
        "submitted": submitted,
        "seen": submitted + seconds,
        "run": run,
    }


def run_papermill(papermill: Path, platform: Platform, out: Path) -> dict[str, Any]:
    """`papermill in.ipynb out.ipynb -k dsml-python-minimal` with the platform's kernelspecs."""
    env = dict(os.environ, JUPYTER_PATH=str(platform.jupyter_path))
    cmd = [str(papermill), str(NOTEBOOK), str(out), "-k", KERNEL, "--no-progress-bar"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t0
    state = "succeeded" if proc.returncode == 0 else f"exit {proc.returncode}"
    result = {"seconds": seconds, "ok": proc.returncode == 0, "state": state}
    if proc.returncode:
        result["stderr"] = proc.stderr[-1000:]
    return result


class JupyterSchedulerDriver:
    """jupyter_scheduler_driver.py in jupyter-scheduler's own virtualenv, one run per request."""

    def __init__(self, python: Path, platform: Platform, root: Path):
        env = dict(os.environ, JUPYTER_PATH=str(platform.jupyter_path))
        root.mkdir(parents=True, exist_ok=True)
        self.stderr = open(root / "driver.log", "w")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [
                str(python),
                str(BENCH / "jupyter_scheduler_driver.py"),
                "--root",
                str(root),
                "--notebook",
                str(NOTEBOOK),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            env=env,
            start_new_session=True,
        )
        hello = self._read()
        self.version = hello.get("version", "?")

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the jupyter-scheduler driver exited ({self.proc.wait()})")
        return json.loads(line)

    def run(self) -> dict[str, Any]:
        """Create one job through Scheduler.create_job and wait for its final status."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()
        result = self._read()
        result["ok"] = result.get("status") == "COMPLETED"
        result["state"] = result.get("status")
        return result

    def close(self) -> None:
        """Ask the driver to quit; kill it if it does not."""
        try:
            if self.proc.poll() is None and self.proc.stdin is not None:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
            self.proc.wait(30)
        except (OSError, subprocess.TimeoutExpired):
            with suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # its spawned job processes too
            self.proc.wait()
        self.stderr.close()


# where the time of one of our runs goes

_LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) worker (.*)$")


def _worker_marks(log_text: str, run_id: int) -> dict[str, float] | None:
    """Epoch times of the worker's milestones for a run, read from the timestamped worker log.

    input: its GET of the run's input came back; cells_start: Papermill starts executing;
    cells_end: the last cell ended; result: its POST of the result came back. Workers share
    the log; one run at a time, only the previous run's worker (past its result) may add lines.
    """
    marks: dict[str, float] = {}
    last_end = None
    for line in log_text.splitlines():
        m = _LOG_LINE.match(line)
        if not m:
            continue
        at = time.mktime(time.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")) + int(m.group(2)) / 1000
        text = m.group(3)
        if "input" not in marks:
            if f'/api/worker/runs/{run_id} "HTTP' in text:
                marks["input"] = at
            continue
        if "cells_start" not in marks and "Executing notebook with kernel" in text:
            marks["cells_start"] = at
        elif "Ending Cell" in text:
            last_end = at
        elif f"/api/worker/runs/{run_id}/result" in text:
            marks["result"] = at
            break
    if last_end is None or not {"input", "cells_start", "result"} <= set(marks):
        return None
    marks["cells_end"] = last_end
    return marks


PHASES = (
    ("submit", "POST jobs/<id>/runs round trip (proxy, hub token check, insert)"),
    ("dispatch", "created -> starting (loop wakes, picks the run, hands it to a worker)"),
    ("handoff", "starting -> worker fetched its input (waits for a worker's kernel if not warm)"),
    ("prepare", "input -> Papermill executes (write notebook, parameterize, nbclient setup)"),
    ("cells", "the cells themselves (2 + the injected parameters cell)"),
    ("after", "last cell -> finished (nbclient teardown, output written, result POST + store)"),
    ("seen", "finished -> the client's poll sees it (50 ms poll + GET round trip)"),
)
"""Phases of one run through our service, in order, with what each one covers."""


def run_phases(result: dict[str, Any], log_text: str) -> dict[str, float] | None:
    """Seconds per phase (PHASES) of one of our runs; None when the log lacks a milestone."""
    run = result["run"]
    marks = _worker_marks(log_text, run["id"])
    events = {e["state"]: _utc(e["at"]) for e in run.get("events") or []}
    if marks is None or "starting" not in events or not run.get("finished_at"):
        return None
    finished = _utc(run["finished_at"])
    return {
        "submit": result["post_seconds"],
        "dispatch": events["starting"] - _utc(run["created_at"]),
        "handoff": marks["input"] - events["starting"],
        "prepare": marks["cells_start"] - marks["input"],
        "cells": marks["cells_end"] - marks["cells_start"],
        "after": finished - marks["cells_end"],
        "seen": result["seen"] - finished,
    }


def http_round_trips(api: SchedulerApi, run_id: int, n: int = 30) -> dict[str, Any]:
    """Median seconds of GET runs/<id> through the proxy, and of the health check direct."""
    through_proxy = []
    for _ in range(n):
        t0 = time.perf_counter()
        api.call("GET", f"runs/{run_id}")
        through_proxy.append(time.perf_counter() - t0)
    ports = json.loads((api.platform.data_dir / "hub" / "ports.json").read_text())
    direct_url = f"http://127.0.0.1:{ports['scheduler']}/services/scheduler/api/health"
    direct = []
    with httpx.Client(timeout=30) as client:
        for _ in range(n):
            t0 = time.perf_counter()
            client.get(direct_url)
            direct.append(time.perf_counter() - t0)
    return {
        "GET runs/<id> via proxy + hub auth": summary(through_proxy),
        "GET health direct to the service": summary(direct),
    }


def profile_worker(platform: Platform) -> dict[str, float]:
    """bench/profile_worker.py's step timings, with the platform's kernelspecs."""
    env = dict(os.environ, JUPYTER_PATH=str(platform.jupyter_path))
    proc = subprocess.run(
        [sys.executable, str(BENCH / "profile_worker.py"), str(NOTEBOOK), "--kernel", KERNEL],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    if proc.returncode != 0:
        return {"error": proc.stderr[-500:]}  # type: ignore[dict-item]
    return json.loads(proc.stdout.strip().splitlines()[-1])


# a. latency


def bench_latency(platform: Platform, opts: Options, work: Path, say: Progress) -> dict[str, Any]:
    """Submit -> finished of the trivial notebook, one at a time, ours against the peers."""
    work.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {"n": opts.latency_runs, "load_before": _load(), "runners": {}}
    peers: dict[str, Callable[[], dict[str, Any]]] = {}
    notes: dict[str, str] = {}
    papermill_platform = Path(sys.executable).parent / "papermill"
    counter = iter(range(10_000))
    peers["papermill CLI (platform venv)"] = lambda: run_papermill(
        papermill_platform, platform, work / f"pm-{next(counter)}.ipynb"
    )
    try:
        clean = ensure_venv("papermill", PAPERMILL, say).parent / "papermill"
        notes["papermill CLI (clean venv)"] = (
            f"papermill {installed_version(clean.parent / 'python', 'papermill')} alone"
        )
        peers["papermill CLI (clean venv)"] = lambda: run_papermill(
            clean, platform, work / f"pmc-{next(counter)}.ipynb"
        )
    except (subprocess.CalledProcessError, OSError) as e:
        notes["papermill CLI (clean venv)"] = f"n/a: installing {PAPERMILL} failed ({e})"
    driver = None
    try:
        python = ensure_venv("jupyter-scheduler", JUPYTER_SCHEDULER, say)
        driver = JupyterSchedulerDriver(python, platform, work / "jupyter-scheduler")
        notes["jupyter-scheduler"] = (
            f"{driver.version}: Scheduler.create_job -> spawned DefaultExecutionManager, "
            "outputs ipynb + html"
        )
        peers["jupyter-scheduler"] = driver.run
    except (subprocess.CalledProcessError, OSError, RuntimeError) as e:
        notes["jupyter-scheduler"] = f"n/a: {e}"
    try:
        with scheduler_api(platform) as api:
            job = api.create_job("bench latency")
            runners: dict[str, Callable[[], dict[str, Any]]] = {
                OURS: lambda: run_ours(api, job["id"]),
            }
            runners.update(peers)
            results: dict[str, list[dict[str, Any]]] = {name: [] for name in runners}
            # one warm-up of each, not counted: first imports, page cache, kernelspec lookup
            say("latency: one uncounted warm-up run of each runner but jupyter-scheduler")
            for name, fn in runners.items():
                if name != "jupyter-scheduler":  # its driver has imported everything already
                    fn()
            names = list(runners)
            for i in range(opts.latency_runs):
                order = names[i % len(names) :] + names[: i % len(names)]
                for name in order:
                    results[name].append(runners[name]())
                line = ", ".join(f"{SHORT[n]} {results[n][-1]['seconds']:.2f}" for n in names)
                say(f"latency {i + 1}/{opts.latency_runs}: {line}")
            say(f"latency: {opts.latency_runs} runs of ours back to back (no pause between)")
            time.sleep(3)  # let the pool refill so the first back-to-back run starts warm
            back = [run_ours(api, job["id"]) for _ in range(opts.latency_runs)]
            results[BACK_TO_BACK] = back
            log_text = platform.workers_log.read_text()
            for name, rows in results.items():
                ok = [r["seconds"] for r in rows if r["ok"]]
                out["runners"][name] = {
                    **summary(ok),
                    "failed": [r["state"] for r in rows if not r["ok"]],
                    "seconds": [round(r["seconds"], 3) for r in rows],
                    "note": notes.get(name, ""),
                }
            for name, note in notes.items():
                if name not in out["runners"]:  # a peer that could not be set up
                    out["runners"][name] = {
                        **summary([]),
                        "failed": [],
                        "seconds": [],
                        "note": note,
                    }
            out["phases"] = {}
            for runner in (OURS, BACK_TO_BACK):
                if runner not in results:
                    continue
                per_run = [p for p in (run_phases(r, log_text) for r in results[runner]) if p]
                phases: dict[str, Any] = {"runs": len(per_run), "per_run": per_run}
                for name, _ in PHASES:
                    phases[name] = summary([p[name] for p in per_run])
                out["phases"][runner] = phases
            if "jupyter-scheduler" in results:
                js = [r for r in results["jupyter-scheduler"] if r["ok"]]
                out["jupyter_scheduler_phases"] = {
                    "create_job (insert, copy, spawn)": summary(
                        [r["create_job_seconds"] for r in js]
                    ),
                    "created -> IN_PROGRESS (spawned process imports, starts)": summary(
                        [(r["start_time_ms"] - r["create_time_ms"]) / 1000 for r in js]
                    ),
                    "IN_PROGRESS -> COMPLETED (kernel start, cells, ipynb + html)": summary(
                        [(r["end_time_ms"] - r["start_time_ms"]) / 1000 for r in js]
                    ),
                    "statuses seen": sorted({"/".join(r["statuses_seen"]) for r in js}),
                }
            say("latency: HTTP round trips and an in-process worker profile")
            out["http"] = http_round_trips(api, back[-1]["run"]["id"])
            out["worker_profile"] = profile_worker(platform)
    finally:
        if driver is not None:
            driver.close()
    out["load_after"] = _load()
    return out


# b. throughput


def throughput_ours(platform: Platform, m: int, say: Progress) -> dict[str, Any]:
    """Submit M runs of one job at once; jobs/minute until the last one is final."""
    with scheduler_api(platform) as api:
        # overlap allow: the job's runs may run side by side up to the service's capacity
        job = api.create_job(
            f"bench throughput {platform.capacity}", overlap="allow", max_concurrent_runs=64
        )
        load = _load()
        t0 = time.perf_counter()
        for _ in range(m):
            api.call("POST", f"jobs/{job['id']}/runs", {})
        submitted = time.perf_counter() - t0
        while True:
            runs = api.call("GET", f"jobs/{job['id']}/runs?limit={m}")["runs"]
            done = [r for r in runs if r["state"] not in ACTIVE]
            if len(done) == m:
                break
            time.sleep(0.2)
        seconds = time.perf_counter() - t0
        server = max(_utc(r["finished_at"]) for r in runs) - min(
            _utc(r["created_at"]) for r in runs
        )
        states = Counter(r["state"] for r in runs)
        say(f"throughput ours, capacity {platform.capacity}: {m} runs in {seconds:.1f} s")
        return {
            "runs": m,
            "seconds": seconds,
            "server_seconds": server,
            "submit_seconds": submitted,
            "jobs_per_minute": m / seconds * 60,
            "states": dict(states),
            "load_before": load,
            "load_after": _load(),
        }


def throughput_papermill(
    platform: Platform, m: int, parallel: int, work: Path, say: Progress
) -> dict[str, Any]:
    """M `papermill` CLI runs, `parallel` processes at a time."""
    papermill = Path(sys.executable).parent / "papermill"
    work.mkdir(parents=True, exist_ok=True)
    load = _load()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        rows = list(
            pool.map(
                lambda i: run_papermill(papermill, platform, work / f"tp-{parallel}-{i}.ipynb"),
                range(m),
            )
        )
    seconds = time.perf_counter() - t0
    say(f"throughput papermill, {parallel} at a time: {m} runs in {seconds:.1f} s")
    failed = [r["stderr"] for r in rows if not r["ok"]]
    if failed:
        say(f"throughput papermill: {len(failed)} failed, e.g.: {failed[0][-300:]}")
    return {
        "runs": m,
        "seconds": seconds,
        "jobs_per_minute": m / seconds * 60,
        "states": dict(Counter(r["state"] for r in rows)),
        "load_before": load,
        "load_after": _load(),
    }


# c. scale: cron lag


def bench_scale(platform: Platform, opts: Options, say: Progress) -> dict[str, Any]:
    """Many `* * * * *` jobs for a few minutes: how late each tick became a record."""
    with scheduler_api(platform) as api:
        tag = uuid.uuid4().hex[:6]
        say(f"scale: creating {opts.scale_jobs} jobs on '* * * * *'")
        t0 = time.perf_counter()
        jobs = [
            api.create_job(f"bench cron {tag} {i}", schedule="* * * * *")
            for i in range(opts.scale_jobs)
        ]
        create_seconds = time.perf_counter() - t0
        load = _load()
        started = time.monotonic()
        while (left := opts.scale_seconds - (time.monotonic() - started)) > 0:
            time.sleep(min(30.0, left))
            health = api.client.get("health").json()
            say(
                f"scale: {time.monotonic() - started:.0f}/{opts.scale_seconds:.0f} s, "
                f"{health.get('queued')} runs queued, load {_load()}"
            )
        load_end = _load()
        say("scale: pausing every job and cancelling the runs still queued")
        t0 = time.perf_counter()
        for job in jobs:
            api.call("PATCH", f"jobs/{job['id']}", {"paused": True})
        pause_seconds = time.perf_counter() - t0
        ours = {job["id"] for job in jobs}
        cancelled = 0
        while True:
            queued = api.call("GET", "runs?state=queued&limit=500")["runs"]
            queued = [r for r in queued if r["job_id"] in ours]
            if not queued:
                break
            for run in queued:
                try:
                    api.call("POST", f"runs/{run['id']}/cancel")
                    cancelled += 1
                except RuntimeError:
                    pass  # it started meanwhile
        records: list[dict[str, Any]] = []
        for job in jobs:
            cursor = None
            while True:
                page = api.call(
                    "GET",
                    f"jobs/{job['id']}/runs?limit=500" + (f"&cursor={cursor}" if cursor else ""),
                )
                records += page["runs"]
                cursor = page["next_cursor"]
                if not cursor:
                    break
    cron = [r for r in records if r["trigger"] == "cron" and r["scheduled_for"]]
    lags = [_utc(r["created_at"]) - _utc(r["scheduled_for"]) for r in cron]
    ticks = Counter(r["scheduled_for"] for r in cron)
    per_tick = {
        tick: summary(
            [
                _utc(r["created_at"]) - _utc(r["scheduled_for"])
                for r in cron
                if r["scheduled_for"] == tick
            ]
        )
        for tick in sorted(ticks)
    }
    executed = [r for r in cron if r["state"] in ("succeeded", "failed")]
    return {
        "jobs": opts.scale_jobs,
        "seconds": opts.scale_seconds,
        "create_jobs_seconds": create_seconds,
        "ticks": len(ticks),
        "records": len(cron),
        "states": dict(Counter(r["state"] for r in cron)),
        "lag": summary(lags),
        "lag_by_tick": {k: {"records": ticks[k], **v} for k, v in per_tick.items()},
        "executed": len(executed),
        "queue_wait_of_executed": summary(
            [_utc(r["started_at"]) - _utc(r["scheduled_for"]) for r in executed]
        ),
        "pause_all_seconds": pause_seconds,
        "cancelled_queued": cancelled,
        "load_before": load,
        "load_end": load_end,
    }


# d. listing


def bench_listing(platform: Platform, opts: Options, say: Progress) -> dict[str, Any]:
    """Page through N runs of one job, 100 at a time; and the first page of GET runs."""
    with scheduler_api(platform) as api:
        job = api.create_job(f"bench listing {uuid.uuid4().hex[:6]}")
        say(f"listing: writing {opts.listing_runs:,} skipped runs with Store.create_run")
        seeded = subprocess.run(
            [
                sys.executable,
                str(BENCH / "seed_runs.py"),
                "--db-url",
                platform.scheduler_db_url,
                "--job",
                str(job["id"]),
                "-n",
                str(opts.listing_runs),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        seed = json.loads(seeded.stdout.strip().splitlines()[-1])
        say(f"listing: seeded in {seed['seconds']:.1f} s; paging through them")
        load = _load()
        pages: list[float] = []
        count = 0
        cursor = None
        t0 = time.perf_counter()
        while True:
            p0 = time.perf_counter()
            page = api.call(
                "GET",
                f"jobs/{job['id']}/runs?limit={opts.page_size}"
                + (f"&cursor={cursor}" if cursor else ""),
            )
            pages.append(time.perf_counter() - p0)
            count += len(page["runs"])
            cursor = page["next_cursor"]
            if not cursor:
                break
        total = time.perf_counter() - t0
        firsts = []
        for _ in range(10):
            p0 = time.perf_counter()
            api.call("GET", f"runs?limit={opts.page_size}")
            firsts.append(time.perf_counter() - p0)
        say(f"listing: {count:,} runs in {len(pages)} pages, {total:.1f} s")
        return {
            "runs_seeded": opts.listing_runs,
            "seed_seconds": seed["seconds"],
            "runs_listed": count,
            "pages": len(pages),
            "total_seconds": total,
            "page": summary(pages),
            # keyset pagination should not slow down towards the oldest runs
            "first_10_pages": summary(pages[:10]),
            "last_10_pages": summary(pages[-10:]),
            "get_runs_first_page": summary(firsts),
            "load_before": load,
            "load_after": _load(),
        }


# the whole set


def run(
    opts: Options, only: set[str], work: Path, say: Progress, skip: set[str] | None = None
) -> dict[str, Any]:
    """Run the selected benchmarks on one or two platforms; return every figure.

    A benchmark that fails is recorded under "errors" and the others still run; Ctrl-C
    (KeyboardInterrupt) stops everything, the platforms included.
    """
    wanted = [n for n in NAMES if n in only and n not in (skip or set())]
    results: dict[str, Any] = {"options": opts.__dict__, "selected": wanted, "errors": {}}

    durations: dict[str, float] = {}
    results["durations_seconds"] = durations

    def attempt(label: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
        started = time.monotonic()
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - record it, go on with the next benchmark
            say(f"{label} FAILED: {type(e).__name__}: {e}")
            results["errors"][label] = f"{type(e).__name__}: {e}"
            return None
        finally:
            durations[label] = round(time.monotonic() - started, 1)

    tp: dict[str, Any] = {}
    if {"latency", "throughput"} & set(wanted):
        with running_platform(work / "platform-capacity-1", capacity=1, say=say) as platform:
            if "latency" in wanted:
                results["latency"] = attempt(
                    "latency", lambda: bench_latency(platform, opts, work / "latency", say)
                )
            if "throughput" in wanted:
                tp["dsml scheduler, capacity 1"] = attempt(
                    "throughput ours 1",
                    lambda: throughput_ours(platform, opts.throughput_runs, say),
                )
                for parallel in (1, 2):
                    tp[f"papermill CLI, {parallel} at a time"] = attempt(
                        f"throughput papermill {parallel}",
                        lambda p=parallel: throughput_papermill(
                            platform, opts.throughput_runs, p, work / "throughput", say
                        ),
                    )
    if {"throughput", "listing", "scale"} & set(wanted):
        with running_platform(work / "platform-capacity-2", capacity=2, say=say) as platform:
            if "throughput" in wanted:
                tp["dsml scheduler, capacity 2"] = attempt(
                    "throughput ours 2",
                    lambda: throughput_ours(platform, opts.throughput_runs, say),
                )
            if "listing" in wanted:
                results["listing"] = attempt("listing", lambda: bench_listing(platform, opts, say))
            if "scale" in wanted:
                results["scale"] = attempt("scale", lambda: bench_scale(platform, opts, say))
    if tp:
        results["throughput"] = {k: v for k, v in tp.items() if v is not None}
    return results


# the printed summary


def _s(value: float | None, unit: str = "s", digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f} {unit}".rstrip()


def _ratio(a: float | None, b: float | None) -> str:
    return "n/a" if not a or not b else f"{a / b:.2f}"


def report(results: dict[str, Any]) -> list[str]:
    """The summary table lines of the scheduler benchmarks."""
    lines: list[str] = []
    lat = results.get("latency")
    if lat:
        lines += [
            f"## latency: trivial 2-cell notebook, submit -> finished, N={lat['n']} one at a time "
            f"(load {lat['load_before']} -> {lat['load_after']})",
            f"{'runner':<36}{'median':>9}{'p90':>9}{'min':>9}{'max':>9}  ok  note",
        ]
        for name, row in lat["runners"].items():
            ok = f"{row['n']}/{row['n'] + len(row['failed'])}"
            lines.append(
                f"{name:<36}{_s(row['median']):>9}{_s(row['p90']):>9}{_s(row['min']):>9}"
                f"{_s(row['max']):>9}  {ok:<6}{row['note']}"
            )
        runners = lat["runners"]
        ours = runners[OURS]["median"]
        b2b = runners[BACK_TO_BACK]["median"]
        mine = [r for r in (OURS, BACK_TO_BACK) if runners.get(r, {}).get("median")]
        lines.append("ratios of medians, ours / theirs (below 1: ours is faster):")
        lines.append(f"  {'':<32}" + "".join(f"{SHORT[r]:>15}" for r in mine))
        for peer in (
            "papermill CLI (platform venv)",
            "papermill CLI (clean venv)",
            "jupyter-scheduler",
        ):
            theirs = runners.get(peer, {}).get("median")
            cells = "".join(f"{_ratio(runners[r]['median'], theirs):>15}" for r in mine)
            lines.append(f"  {peer:<32}{cells}")
        pm = runners.get("papermill CLI (platform venv)", {}).get("median")
        if ours and pm:
            verdict = "met" if ours < pm / 3 else "NOT met"
            lines.append(
                f"target 'ours < 1/3 of the papermill CLI' (< {_s(pm / 3)}): {verdict} "
                f"(median {_s(ours)}; back to back {_s(b2b)})"
            )
        phases = lat.get("phases") or {}
        shown = [r for r in (OURS, BACK_TO_BACK) if (phases.get(r) or {}).get("runs")]
        if shown:
            lines.append("where a run of ours spends its time (median s per phase):")
            lines.append(f"  {'phase':<11}" + "".join(f"{SHORT[r]:>15}" for r in shown))
            for name, what in PHASES:
                cells = "".join(f"{_s(phases[r][name]['median'], 's', 3):>15}" for r in shown)
                lines.append(f"  {name:<11}{cells}  {what}")
        js = lat.get("jupyter_scheduler_phases")
        if js:
            lines.append("jupyter-scheduler phases (median):")
            for name, value in js.items():
                shown = ", ".join(value) if isinstance(value, list) else _s(value["median"])
                lines.append(f"  {name:<62}{shown}")
        if lat.get("http"):
            lines.append("HTTP round trips (median):")
            for name, value in lat["http"].items():
                lines.append(f"  {name:<40}{_s(value['median'] * 1000, 'ms', 1)}")
        if lat.get("worker_profile"):
            lines.append("one worker's steps in-process (bench/profile_worker.py):")
            for name, value in lat["worker_profile"].items():
                lines.append(
                    f"  {name:<56}{_s(value, 's', 3) if isinstance(value, float) else value}"
                )
        lines.append("")
    tp = results.get("throughput")
    if tp:
        lines += [
            f"## throughput: {next(iter(tp.values()))['runs']} trivial runs submitted at once",
            f"{'runner':<36}{'jobs/min':>9}{'seconds':>9}  states",
        ]
        for name, row in tp.items():
            flag = "" if set(row["states"]) == {"succeeded"} else "  (NOT all succeeded!)"
            lines.append(
                f"{name:<36}{row['jobs_per_minute']:>9.1f}{row['seconds']:>9.1f}  "
                f"{row['states']}{flag}"
            )
        for c in (1, 2):
            ours_row = tp.get(f"dsml scheduler, capacity {c}")
            pm_row = tp.get(f"papermill CLI, {c} at a time")
            if ours_row and pm_row:
                lines.append(
                    f"ratio jobs/min ours / papermill at concurrency {c}: "
                    f"{_ratio(ours_row['jobs_per_minute'], pm_row['jobs_per_minute'])} "
                    "(above 1: ours is faster)"
                )
        lines.append("")
    sc = results.get("scale")
    if sc:
        lag = sc["lag"]
        lines += [
            f"## scale: {sc['jobs']} jobs on '* * * * *', capacity 2, {sc['seconds']:.0f} s",
            f"created the jobs in {sc['create_jobs_seconds']:.1f} s; {sc['ticks']} ticks made "
            f"{sc['records']} records {sc['states']}",
            f"cron lag (created_at - scheduled_for): p50 {_s(lag['median'])}, "
            f"p95 {_s(lag['p95'])}, max {_s(lag['max'])}",
        ]
        for tick, row in sc["lag_by_tick"].items():
            lines.append(
                f"  tick {tick}: {row['records']} records, lag min {_s(row['min'])} "
                f"p50 {_s(row['median'])} max {_s(row['max'])}"
            )
        wait = sc["queue_wait_of_executed"]
        lines += [
            f"{sc['executed']} runs executed in the window; their tick -> start wait: "
            f"p50 {_s(wait['median'])}, max {_s(wait['max'])}",
            f"paused all {sc['jobs']} in {sc['pause_all_seconds']:.1f} s; cancelled "
            f"{sc['cancelled_queued']} queued runs (load {sc['load_before']} -> {sc['load_end']})",
            "",
        ]
    ls = results.get("listing")
    if ls:
        lines += [
            f"## listing: {ls['runs_listed']:,} runs of one job, pages of 100",
            f"seeded {ls['runs_seeded']:,} runs with Store.create_run in "
            f"{ls['seed_seconds']:.1f} s",
            f"paged through all in {ls['total_seconds']:.2f} s ({ls['pages']} pages): per page "
            f"median {_s(ls['page']['median'] * 1000, 'ms', 1)}, "
            f"p95 {_s(ls['page']['p95'] * 1000, 'ms', 1)}, "
            f"max {_s(ls['page']['max'] * 1000, 'ms', 1)}; first 10 pages median "
            f"{_s(ls['first_10_pages']['median'] * 1000, 'ms', 1)}, last 10 "
            f"{_s(ls['last_10_pages']['median'] * 1000, 'ms', 1)}",
            f"GET runs?limit=100 (first page, all jobs): median "
            f"{_s(ls['get_runs_first_page']['median'] * 1000, 'ms', 1)}",
            "",
        ]
    if results.get("durations_seconds"):
        taken = ", ".join(f"{k} {v:.0f} s" for k, v in results["durations_seconds"].items())
        lines.append(f"time taken (platform starts not included): {taken}")
    for label, message in (results.get("errors") or {}).items():
        lines.append(f"ERROR in {label}: {message}")
    return [line.rstrip() for line in lines]
