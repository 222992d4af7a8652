"""Run notebooks through jupyter-scheduler's own execution path, without its HTTP server.

This script runs in jupyter-scheduler's OWN virtualenv (bench/.venvs/jupyter-scheduler), never
in the platform's. It builds the `Scheduler` that `jupyter server` would build (same classes,
its own SQLite database, a staging folder) and, for each request, does exactly what the
server's `POST /scheduler/jobs` handler does: `Scheduler.create_job(CreateJob(...))`. That
inserts the job record, copies the notebook to the staging area and starts a `spawn`
multiprocessing child that runs `DefaultExecutionManager.process()` (nbconvert's
ExecutePreprocessor with a fresh kernel, then the output files). The driver then polls the
job record every 50 ms until it is final, as a client polling `GET /scheduler/jobs/<id>` would.

Why not through `jupyter server`: on this machine every job created through its REST API ends
STOPPED within 0.1 s (see DESIGN.md, "Found by trying"); the execution path itself works.

Protocol (one JSON object per line on stdout, so bench/scheduler.py can interleave it with the
other runners while this process stays up, like a long-lived server would):

    stdin:  run            -> stdout: {"status": ..., "seconds": ..., ...}
    stdin:  quit (or EOF)  -> exit 0
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

POLL_SECONDS = 0.05
TIMEOUT_SECONDS = 300.0


def make_scheduler(root: Path) -> Any:
    """A jupyter-scheduler `Scheduler` on a fresh SQLite database under `root`."""
    from jupyter_scheduler.environments import CondaEnvironmentManager
    from jupyter_scheduler.orm import create_tables
    from jupyter_scheduler.scheduler import Scheduler

    db_url = f"sqlite:///{root / 'scheduler.sqlite'}"
    create_tables(db_url)
    return Scheduler(
        root_dir=str(root),
        environments_manager=CondaEnvironmentManager(),
        db_url=db_url,
        staging_path=str(root / "staging"),
    )


def run_once(scheduler: Any, notebook: str, index: int) -> dict[str, Any]:
    """Create one job (as the REST handler does) and wait until its record is final."""
    from jupyter_scheduler.models import CreateJob

    model = CreateJob(
        input_uri=notebook,
        runtime_environment_name="",
        name=f"bench-{index}",
        # what the JupyterLab "Create job" dialog asks for by default: notebook and HTML
        output_formats=["ipynb", "html"],
    )
    t0 = time.perf_counter()
    job_id = scheduler.create_job(model)
    t_created = time.perf_counter()
    seen: list[str] = []
    t_in_progress = None
    while True:
        job = scheduler.get_job(job_id, job_files=False)
        status = str(job.status)
        if not seen or seen[-1] != status:
            seen.append(status)
        if status == "IN_PROGRESS" and t_in_progress is None:
            t_in_progress = time.perf_counter()
        # a new record reads STOPPED (the ORM default) until the spawned process's
        # before_start() sets IN_PROGRESS: STOPPED is final only after that
        if status in ("COMPLETED", "FAILED") or (status == "STOPPED" and "IN_PROGRESS" in seen):
            break
        if time.perf_counter() - t0 > TIMEOUT_SECONDS:
            status = "TIMEOUT"
            break
        time.sleep(POLL_SECONDS)
    t1 = time.perf_counter()
    staging = Path(scheduler.staging_path) / job_id
    outputs = sorted(p.name for p in staging.iterdir()) if staging.exists() else []
    return {
        "status": status,
        "statuses_seen": seen,
        "message": job.status_message,
        "seconds": t1 - t0,
        "create_job_seconds": t_created - t0,
        "seen_in_progress_seconds": None if t_in_progress is None else t_in_progress - t0,
        # the execution manager's own timestamps (ms since the epoch)
        "create_time_ms": job.create_time,
        "start_time_ms": job.start_time,
        "end_time_ms": job.end_time,
        "submitted_at": time.time() - (t1 - t0),
        "outputs": outputs,
    }


def main(argv: list[str] | None = None) -> int:
    """Serve `run` requests on stdin until `quit` or end of input."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="scratch folder (database, staging)")
    parser.add_argument("--notebook", required=True, help="notebook to run (copied into root)")
    args = parser.parse_args(argv)
    root = Path(args.root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    name = Path(args.notebook).name
    shutil.copy(args.notebook, root / name)
    scheduler = make_scheduler(root)
    import jupyter_scheduler

    print(json.dumps({"ready": True, "version": jupyter_scheduler.__version__}), flush=True)
    index = 0
    for line in sys.stdin:
        command = line.strip()
        if command == "quit":
            break
        if command != "run":
            print(json.dumps({"error": f"unknown command {command!r}"}), flush=True)
            continue
        index += 1
        try:
            result = run_once(scheduler, name, index)
        except Exception as e:  # noqa: BLE001 - report any failure to the caller as data
            result = {"status": "ERROR", "message": f"{type(e).__name__}: {e}", "seconds": None}
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":  # the spawned execution processes import this module too
    raise SystemExit(main())
