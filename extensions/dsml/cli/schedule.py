"""`dsml schedule | run | jobs | runs | cancel`: notebooks as jobs, through the scheduler API.

A thin layer over the scheduler service's REST API. It finds the hub at --hub-url /
DSML_HUB_URL (default http://127.0.0.1:8000) and authenticates with JUPYTERHUB_API_TOKEN or
--token-file, so inside a user server it just works (a token on the command line shows in the
process list: --token still works, with a warning).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from dsml.client import SCHEDULER, Client, scheduler_client, service_api
from dsml.exceptions import SettingsError
from dsml.kernels import notebook_environment
from dsml.notebooks import read_notebook
from dsml.parameters import ParameterError, read_cli_value

ACTIVE = ("queued", "starting", "running")


def absolute(client: Client, url: str | None) -> str | None:
    """An API link made absolute (the API returns paths below the platform's URL)."""
    base = client.base_url.split(service_api(SCHEDULER))[0]
    return base + url if url and url.startswith("/") else url


def _options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hub-url", default=None, help="hub URL (default: $DSML_HUB_URL or :8000)")
    p.add_argument(
        "--token",
        default=None,
        help="hub API token; shows in the process list: prefer $JUPYTERHUB_API_TOKEN or "
        "--token-file",
    )
    p.add_argument("--token-file", default=None, help="file holding the hub API token")
    p.add_argument("--json", action="store_true", help="print JSON")


def _notebook_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("notebook", help="path of the .ipynb file")
    p.add_argument(
        "-p",
        "--parameter",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a parameter, read according to its declared type (repeatable)",
    )
    p.add_argument("--env", default=None, help="curated environment (default: the notebook's)")
    p.add_argument("--name", default=None, help="job name (default: the notebook's file name)")
    p.add_argument(
        "--input-folder",
        action="store_true",
        help="send the notebook's folder with it (recursively, no hidden files, no symlinks): "
        "the run finds the files beside the notebook",
    )


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the scheduling commands."""
    schedule = sub.add_parser("schedule", help="schedule a notebook with cron")
    _notebook_options(schedule)
    schedule.add_argument("--cron", required=True, help="cron expression, e.g. '0 6 * * 1-5'")
    schedule.add_argument("--tz", default="UTC", help="IANA timezone of the schedule")
    schedule.add_argument("--catch-up", choices=("none", "latest", "all"), default=None)
    schedule.add_argument("--overlap", choices=("skip", "queue", "allow"), default=None)
    schedule.add_argument("--timeout", type=int, default=None, help="whole-run deadline, seconds")
    schedule.add_argument("--cell-timeout", type=int, default=None, help="per-cell timeout, s")
    schedule.add_argument("--retries", type=int, default=None, help="retries of failed runs")
    schedule.add_argument("--share-with", action="append", default=[], metavar="GROUP")
    _options(schedule)
    schedule.set_defaults(func=run_schedule)

    run = sub.add_parser("run", help="run a notebook once through the scheduler")
    _notebook_options(run)
    run.add_argument("--timeout", type=int, default=None, help="whole-run deadline, seconds")
    run.add_argument("--cell-timeout", type=int, default=None, help="per-cell timeout, seconds")
    run.add_argument("--wait", action="store_true", help="wait for the end; exit 0 only on success")
    _options(run)
    run.set_defaults(func=run_run)

    jobs = sub.add_parser("jobs", help="list my jobs")
    _options(jobs)
    jobs.set_defaults(func=run_jobs)

    runs = sub.add_parser("runs", help="list the runs of a job")
    runs.add_argument("job", type=int, help="job id")
    runs.add_argument("--limit", type=int, default=20)
    _options(runs)
    runs.set_defaults(func=run_runs)

    cancel = sub.add_parser("cancel", help="cancel a queued or running run")
    cancel.add_argument("run", type=int, help="run id")
    _options(cancel)
    cancel.set_defaults(func=run_cancel)


def client_for(args: argparse.Namespace) -> Client:
    """The scheduler API client from flags or the environment."""
    hub = args.hub_url or os.environ.get("DSML_HUB_URL") or "http://127.0.0.1:8000"
    token = None
    if getattr(args, "token", None):
        print(
            "warning: --token shows the token in the process list; set JUPYTERHUB_API_TOKEN "
            "or use --token-file",
            file=sys.stderr,
        )
        token = args.token
    elif getattr(args, "token_file", None):
        try:
            token = Path(args.token_file).read_text().strip()
        except OSError as e:
            raise SettingsError(f"cannot read --token-file {args.token_file}: {e}") from None
    token = token or os.environ.get("JUPYTERHUB_API_TOKEN")
    if not token:
        raise SettingsError("no hub API token: set JUPYTERHUB_API_TOKEN or pass --token-file FILE")
    return scheduler_client(hub, token, hint_403=" (set JUPYTERHUB_API_TOKEN or pass --token-file)")


MAX_INPUT_FILES = 500
"""The service's default `max_input_files`: refuse early what it would refuse."""

MAX_INPUT_BYTES = 20 * 1024 * 1024
"""The service's default `max_input_bytes`."""


def input_files(notebook: str, show: bool = True) -> list[dict[str, str]]:
    """The notebook's folder as `input_files`: every regular file below it (not the notebook
    itself), without hidden files or folders and without following symlinks."""
    root = Path(notebook).resolve().parent
    found: list[Path] = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(folder) / name
            if name.startswith(".") or path.is_symlink() or not path.is_file():
                continue
            if path == Path(notebook).resolve():
                continue
            found.append(path)
    if len(found) > MAX_INPUT_FILES:
        raise SettingsError(
            f"--input-folder: {root} holds {len(found)} files; the limit is {MAX_INPUT_FILES}"
        )
    total = sum(p.stat().st_size for p in found)
    if total > MAX_INPUT_BYTES:
        raise SettingsError(
            f"--input-folder: {root} holds {total:,} bytes; the limit is {MAX_INPUT_BYTES:,}: "
            "move large data out of the notebook's folder"
        )
    if show and total > 1024 * 1024:
        print(f"sending {len(found)} input files, {total / 1e6:.1f} MB", file=sys.stderr)
    return [
        {
            "path": p.relative_to(root).as_posix(),
            "content_base64": base64.b64encode(p.read_bytes()).decode(),
        }
        for p in found
    ]


def _read_notebook(path: str) -> tuple[str, dict[str, Any]]:
    return Path(path).name, read_notebook(path)


def _environment(args: argparse.Namespace, nb: dict[str, Any]) -> str:
    if args.env:
        return args.env
    return notebook_environment(nb) or "datascience"


def _parameters(client: Client, name: str, nb: dict[str, Any], raw: list[str]) -> dict[str, Any]:
    """-p NAME=VALUE pairs, each read by the declared type of the notebook's parameter."""
    if not raw:
        return {}
    schema = client.call("POST", "inspect", {"notebook": nb, "notebook_name": name})["parameters"]
    values: dict[str, Any] = {}
    for item in raw:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SettingsError(f"-p {item!r} is not NAME=VALUE")
        try:
            values[key] = read_cli_value(schema, key, value)
        except ParameterError as e:
            raise SettingsError(str(e)) from None
    return values


def _find_job(client: Client, name: str) -> dict[str, Any] | None:
    cursor = None
    while True:
        page = client.call("GET", "jobs" + (f"?cursor={cursor}" if cursor else ""))
        for job in page["jobs"]:
            if job["name"] == name:
                return job
        cursor = page["next_cursor"]
        if not cursor:
            return None


def _upsert(client: Client, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Create the job, or update the one with that name (a new notebook is a new version)."""
    existing = _find_job(client, body["name"])
    if existing is None:
        job = client.call("POST", "jobs", body, headers={"Idempotency-Key": uuid.uuid4().hex})
        return job, True
    return client.call("PATCH", f"jobs/{existing['id']}", body), False


def run_schedule(args: argparse.Namespace) -> int:
    """Carry out `dsml schedule`."""
    client = client_for(args)
    name, nb = _read_notebook(args.notebook)
    body: dict[str, Any] = {
        "name": args.name or Path(name).stem,
        "notebook": nb,
        "notebook_name": name,
        "environment": _environment(args, nb),
        "parameters": _parameters(client, name, nb, args.parameter),
        "schedule": args.cron,
        "timezone": args.tz,
        "paused": False,
    }
    for key, value in (
        ("catch_up", args.catch_up),
        ("overlap", args.overlap),
        ("deadline_seconds", args.timeout),
        ("cell_timeout_seconds", args.cell_timeout),
        ("retries", args.retries),
    ):
        if value is not None:
            body[key] = value
    if args.share_with:
        body["shared_with"] = args.share_with
    if args.input_folder:
        body["input_files"] = input_files(args.notebook, show=not args.json)
    job, created = _upsert(client, body)
    if args.json:
        print(json.dumps(job, indent=2))
    else:
        verb = "scheduled" if created else "updated"
        print(
            f"{verb} job {job['id']} {job['name']!r} (version {job['version']}): "
            f"{job['schedule']} {job['timezone']}, next run {job['next_run_at']}"
        )
    return 0


def _bar(run: dict[str, Any], started: float) -> str:
    cell, cells = run["progress"]["cell"], run["progress"]["cells"]
    width = 24
    done = int(width * (cell or 0) / cells) if cells else 0
    progress = f"cell {cell}/{cells}" if cells else ""
    return (
        f"\r[{'#' * done}{'-' * (width - done)}] {run['state']:<9} {progress:<12} "
        f"{time.monotonic() - started:6.1f} s"
    )


def run_record(client: Client, run: dict[str, Any]) -> dict[str, Any]:
    """What `dsml run --json` prints: the final run record with absolute output URLs."""
    error = run.get("error") or {}
    return {
        "id": run["id"],
        "job_id": run["job_id"],
        "state": run["state"],
        "attempt": run["attempt"],
        "duration_seconds": run["duration_seconds"],
        "error_cell_index": error.get("cell_index"),
        "executed_error_cell_index": error.get("executed_cell_index"),
        "error_name": error.get("name"),
        "error_value": error.get("value"),
        "message": run.get("message"),
        "notebook_url": absolute(client, run["urls"]["notebook"]),
        "html_url": absolute(client, run["urls"]["html"]),
        "page_url": absolute(client, run["urls"]["page"]),
    }


def wait_for(client: Client, run: dict[str, Any], show: bool) -> dict[str, Any]:
    """Poll the run until it ends (following retries), drawing a progress bar on stderr."""
    started = time.monotonic()
    tty = show and sys.stderr.isatty()
    while True:
        run = client.call("GET", f"runs/{run['id']}")
        if tty:
            print(_bar(run, started), end="", file=sys.stderr, flush=True)
        if run["state"] not in ACTIVE:
            retry = _retry_of(client, run)
            if retry is None:
                break
            run = retry
        time.sleep(0.25)
    if tty:
        print(file=sys.stderr)
    return run


def _retry_of(client: Client, run: dict[str, Any]) -> dict[str, Any] | None:
    if run["state"] not in ("failed", "lost", "timed_out"):
        return None
    page = client.call("GET", f"jobs/{run['job_id']}/runs?limit=20")
    for other in page["runs"]:
        if other.get("retry_of") == run["id"]:
            return other
    return None


def run_run(args: argparse.Namespace) -> int:
    """Carry out `dsml run`."""
    client = client_for(args)
    name, nb = _read_notebook(args.notebook)
    body: dict[str, Any] = {
        "name": args.name or f"{Path(name).stem} (ad hoc)",
        "notebook": nb,
        "notebook_name": name,
        "environment": _environment(args, nb),
        "schedule": None,
        "deadline_seconds": args.timeout,
        "cell_timeout_seconds": args.cell_timeout,
    }
    if args.input_folder:
        body["input_files"] = input_files(args.notebook, show=not args.json)
    params = _parameters(client, name, nb, args.parameter)
    job, _ = _upsert(client, body)
    run = client.call(
        "POST",
        f"jobs/{job['id']}/runs",
        {"parameters": params},
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    if args.wait:
        run = wait_for(client, run, show=not args.json)
    record = run_record(client, run)
    if args.json:
        print(json.dumps(record, indent=2))
    else:
        line = f"run {run['id']} of job {job['id']}: {run['state']}"
        if record["error_name"]:
            line += (
                f" at cell {record['error_cell_index']}: "
                f"{record['error_name']}: {record['error_value']}"
            )
        elif run.get("message") and run["state"] != "succeeded":
            line += f" ({run['message']})"
        print(line)
        if record["html_url"]:
            print(f"output: {record['html_url']}")
    if args.wait:
        return 0 if run["state"] == "succeeded" else 1
    return 0


def run_jobs(args: argparse.Namespace) -> int:
    """Carry out `dsml jobs`."""
    client = client_for(args)
    jobs: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = client.call("GET", "jobs" + (f"?cursor={cursor}" if cursor else ""))
        jobs += page["jobs"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    if args.json:
        print(json.dumps(jobs, indent=2))
        return 0
    print(f"{'ID':>5}  {'NAME':<30} {'ENV':<15} {'SCHEDULE':<18} {'NEXT RUN':<22} STATUS")
    for j in jobs:
        status = "paused" if j["paused"] else "active"
        print(
            f"{j['id']:>5}  {j['name'][:30]:<30} {j['environment']:<15} "
            f"{(j['schedule'] or 'on demand'):<18} {(j['next_run_at'] or '-')[:19]:<22} {status}"
        )
    return 0


def run_runs(args: argparse.Namespace) -> int:
    """Carry out `dsml runs JOB`."""
    client = client_for(args)
    runs = client.call("GET", f"jobs/{args.job}/runs?limit={args.limit}")["runs"]
    if args.json:
        print(json.dumps([run_record(client, r) | {"events": None} for r in runs], indent=2))
        return 0
    print(
        f"{'RUN':>6}  {'STATE':<10} {'TRIGGER':<8} {'SCHEDULED FOR':<20} {'DURATION':>9}  MESSAGE"
    )
    for r in runs:
        duration = f"{r['duration_seconds']:.1f} s" if r["duration_seconds"] is not None else ""
        print(
            f"{r['id']:>6}  {r['state']:<10} {r['trigger']:<8} "
            f"{(r['scheduled_for'] or '')[:19]:<20} {duration:>9}  {r['message'] or ''}"
        )
    return 0


def run_cancel(args: argparse.Namespace) -> int:
    """Carry out `dsml cancel RUN`."""
    client = client_for(args)
    run = client.call("POST", f"runs/{args.run}/cancel")
    if args.json:
        print(json.dumps(run_record(client, run), indent=2))
    else:
        print(f"run {run['id']}: {run['state']}")
    return 0
