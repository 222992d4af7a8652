"""`dsml migrate-check NOTEBOOK --env NAME`: run a notebook in a curated environment and report
the cells whose results differ from the outputs stored in it.

This answers "the migrated model gives different predictions": numbers are compared within a
relative tolerance, tables and text as text with numbers, images by hash. The run goes through
the scheduler when a hub URL and token are given (or set in the environment), else locally
with Papermill and the environment's kernel.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from dsml.cli.options import add_location_options, resolve
from dsml.environments import build as env_build
from dsml.environments import find_environment
from dsml.environments.compare import compare_notebooks, html_report
from dsml.exceptions import EnvironmentBuildError
from dsml.notebooks import read_notebook


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register `dsml migrate-check`."""
    p = sub.add_parser(
        "migrate-check", help="run a notebook in an environment; report cells whose results differ"
    )
    p.add_argument("notebook", help="a notebook with stored outputs (the results to keep)")
    p.add_argument("--env", required=True, help="curated environment to check against")
    p.add_argument("--rtol", type=float, default=1e-6, help="relative tolerance for numbers")
    p.add_argument("--atol", type=float, default=1e-12, help="absolute tolerance for numbers")
    p.add_argument("--report", default=None, help="write the side-by-side HTML report here")
    p.add_argument("--timeout", type=int, default=600, help="whole-run deadline, seconds")
    p.add_argument("--local", action="store_true", help="run locally even if a hub is reachable")
    p.add_argument("--hub-url", default=None, help="run through this hub's scheduler")
    p.add_argument("--token", default=None, help="hub API token (default $JUPYTERHUB_API_TOKEN)")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_location_options(p)
    p.set_defaults(func=run)


def _run_locally(nb_path: Path, env_name: str, args: argparse.Namespace) -> dict[str, Any]:
    import papermill

    from dsml.kernelclient import SteadyKernelManager

    _, datadir = resolve(args)
    env = find_environment(env_name)
    if env_build.status(env, datadir).state != "built":
        raise EnvironmentBuildError(
            f"environment {env_name} ({env.version}) is not built in {datadir.root}; "
            f"run `dsml env build {env_name}` first"
        )
    os.environ["JUPYTER_PATH"] = os.pathsep.join(
        p for p in (str(datadir.jupyter_data), os.environ.get("JUPYTER_PATH", "")) if p
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "executed.ipynb"
        try:
            papermill.execute_notebook(
                str(nb_path),
                str(out),
                kernel_name=env.kernel_name,
                cwd=str(nb_path.parent),
                progress_bar=not args.json,
                execution_timeout=args.timeout,
                kernel_manager_class=SteadyKernelManager,
            )
        except papermill.PapermillExecutionError:
            pass  # the error is an output like any other: compared below
        return json.loads(out.read_text())


def _run_on_hub(nb_path: Path, env_name: str, args: argparse.Namespace) -> dict[str, Any]:
    from dsml.cli.schedule import _upsert, client_for, wait_for

    client = client_for(args)
    nb = read_notebook(nb_path)
    job, _ = _upsert(
        client,
        {
            "name": f"{nb_path.stem} (migrate-check {env_name})",
            "notebook": nb,
            "notebook_name": nb_path.name,
            "environment": env_name,
            "schedule": None,
            "deadline_seconds": args.timeout,
            "retries": 0,
        },
    )
    run = client.call("POST", f"jobs/{job['id']}/runs", {"parameters": {}})
    run = wait_for(client, run, show=not args.json)
    if not run["has_output"]:
        from dsml.exceptions import HubError

        raise HubError(f"run {run['id']} ended {run['state']} without output: {run['message']}")
    return client.call("GET", f"runs/{run['id']}/output.ipynb")


def run(args: argparse.Namespace) -> int:
    """Carry out `dsml migrate-check`; exit 0 when every compared cell agrees, 1 otherwise."""
    nb_path = Path(args.notebook)
    original = read_notebook(nb_path)
    find_environment(args.env)
    on_hub = (
        not args.local
        and (args.hub_url or os.environ.get("DSML_HUB_URL"))
        and (args.token or os.environ.get("JUPYTERHUB_API_TOKEN"))
    )
    executed = (
        _run_on_hub(nb_path, args.env, args) if on_hub else _run_locally(nb_path, args.env, args)
    )
    diffs, compared = compare_notebooks(original, executed, rtol=args.rtol, atol=args.atol)
    if args.report:
        Path(args.report).write_text(html_report(nb_path.name, args.env, diffs, compared))
    if args.json:
        print(
            json.dumps(
                {
                    "notebook": str(nb_path),
                    "environment": args.env,
                    "executed_on": "hub" if on_hub else "local",
                    "cells_compared": compared,
                    "differences": [
                        {"cell_index": d.index, "kind": d.kind, "detail": d.detail} for d in diffs
                    ],
                    "report": args.report,
                },
                indent=2,
            )
        )
    else:
        for d in diffs:
            first = d.source.strip().splitlines()[0][:60] if d.source.strip() else ""
            print(f"cell {d.index} ({first}): {d.kind}: {d.detail}")
        verdict = (
            f"{len(diffs)} of {compared} compared cells differ"
            if diffs
            else (f"all {compared} compared cells agree")
        )
        print(f"{nb_path.name} in {args.env}: {verdict}")
        if args.report:
            print(f"report: {args.report}")
    return 1 if diffs else 0
