"""Time, in one process, each step a pre-started scheduler worker takes for one trivial run.

It calls the worker's own functions (`dsml.scheduler.worker`: start_kernel, warm_up,
render_html) and Papermill with the arguments the worker passes, so the figures split the
service's run time into kernel start (paid before the run by a warm worker), Papermill's first
and second execution, and the first and second HTML render. Printed as one JSON object.

    JUPYTER_PATH=<data>/share/jupyter python bench/profile_worker.py bench/notebooks/trivial.ipynb
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any


def _timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - started


def profile(notebook: Path, kernel: str) -> dict[str, float]:
    """Seconds per worker step for `notebook` on `kernel`."""
    started = time.perf_counter()
    from dsml.utils import skip_slow_format_checks

    skip_slow_format_checks()
    import papermill

    from dsml.scheduler import worker

    out: dict[str, float] = {"import worker + papermill": time.perf_counter() - started}
    work = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    try:
        source = work / notebook.name
        shutil.copy(notebook, source)
        for attempt in (1, 2):
            km, out[f"start kernel #{attempt}"] = _timed(worker.start_kernel, kernel, str(work))
            if attempt == 1:
                _, out["warm_up (import papermill, build HTMLExporter)"] = _timed(worker.warm_up)
            target = work / f"output-{attempt}.ipynb"
            _, out[f"papermill.execute_notebook #{attempt} (pre-started kernel)"] = _timed(
                papermill.execute_notebook,
                str(source),
                str(target),
                parameters={"scheduled_for": "2026-01-01T00:00:00Z"},
                kernel_name=kernel,
                km=km,
                progress_bar=False,
                log_output=True,
                cwd=str(work),
            )
            _, out[f"render_html #{attempt}"] = _timed(worker.render_html, target)
            _, out[f"stop kernel #{attempt}"] = _timed(worker.stop_kernel, km)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {k: round(v, 4) for k, v in out.items()}


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments and print the step timings as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook", type=Path, help="notebook to run")
    parser.add_argument("--kernel", default="dsml-python-minimal", help="kernelspec name")
    args = parser.parse_args(argv)
    print(json.dumps(profile(args.notebook, args.kernel)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
