"""JupyterLab's Notebook Jobs UI (jupyter-scheduler) on top of the hub-wide scheduler service.

jupyter-scheduler brings the UI and a REST API under `<server>/scheduler/`; this module swaps
everything behind that API for calls to the scheduler service at
`$DSML_HUB_URL/services/scheduler/api/`, made with the server's `$JUPYTERHUB_API_TOKEN`. Nothing
runs or is stored in the user server, so jobs keep running when it stops.

How the two models map:

* a jupyter-scheduler *job definition* is a service **job** with a cron schedule
  (id `job-<n>`); pausing and resuming it set the job's `paused`;
* a jupyter-scheduler *job* is a service **run** (id `run-<n>`); "Run now" from the UI makes
  (or updates) an unscheduled service job named `<name> (ad hoc)`, as `dsml run` does, and
  queues one run of it;
* "Run job with input folder" sends the notebook's folder with the job as `input_files`, read
  here, by the user's own server (`inputs.py`: no hidden files or symlinks, within limits);
* the Create Job dialog's environment list is the curated environments, the page's notebook's
  first (the dialog pre-selects the first); whatever name comes back (name, display name,
  kernel name) is mapped to the service's name (`mapping.environment_name`);
* output files ("Download job files") are the run's `output.ipynb` and `output.html`, fetched
  from the service into `jobs/<notebook>-run-<n>/` under the server's root.

Service errors reach the browser with the service's status and message: `DsmlSchedulerApp`
is jupyter-scheduler's server extension with handlers that do not turn them into a 500.
"""

from __future__ import annotations

from typing import Any

from dsml.lab.scheduler.backend import (
    DsmlEnvironmentManager,
    DsmlExecutionManager,
    DsmlJobFilesManager,
    DsmlScheduler,
)
from dsml.lab.scheduler.extension import DsmlSchedulerApp

__all__ = [
    "DsmlEnvironmentManager",
    "DsmlExecutionManager",
    "DsmlJobFilesManager",
    "DsmlScheduler",
    "DsmlSchedulerApp",
]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    """Jupyter Server's entry point: enable with `--ServerApp.jpserver_extensions`."""
    return [{"module": "dsml.lab.scheduler", "app": DsmlSchedulerApp}]
