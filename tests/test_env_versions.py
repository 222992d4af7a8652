"""Environment versions: a rebuild from a changed lock is a new version, `dsml env show` says
what changed, and a job pinned to the old version still runs on it (through a real scheduler
service and real workers)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from dsml.datadir import DataDir
from dsml.environments import build as env_build
from dsml.environments import find_environment
from dsml.scheduler.store import Store

from conftest import DSML, ROOT, free_port

PRINT_PREFIX = json.dumps(
    {
        "cells": [
            {
                "cell_type": "code",
                "metadata": {},
                "source": "import sys\nprint(sys.prefix)",
                "outputs": [],
                "execution_count": None,
            }
        ],
        "metadata": {
            "kernelspec": {"name": "dsml-python-minimal", "display_name": "m", "language": "python"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
)


def drop_from_lock(lock: Path, package: str) -> None:
    """Remove one pinned package (and its hash lines) from a uv-made lock."""
    out, skipping = [], False
    for line in lock.read_text().splitlines(keepends=True):
        if line.startswith(f"{package}=="):
            skipping = True
            continue
        if skipping and (line.startswith(" ") or line.startswith("\t")):
            continue
        skipping = False
        out.append(line)
    lock.write_text("".join(out))


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    shutil.copytree(ROOT / "images" / "python-minimal", root / "images" / "python-minimal")
    return root


def wait_state(store: Store, run_id: int, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = store.get_run(run_id)
        if run["state"] not in ("queued", "starting", "running"):
            return run
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} did not finish")


def printed_prefix(data: Path, run_id: int) -> str:
    nb = json.loads((data / "runs" / str(run_id) / "output.ipynb").read_text())
    return "".join(nb["cells"][-1]["outputs"][0]["text"]).strip()


def test_new_lock_new_version_and_pinned_job_keeps_old(tree: Path, tmp_path: Path) -> None:
    os.environ["DSML_ROOT"] = str(tree)
    try:
        datadir = DataDir(tmp_path / "data")
        datadir.ensure()
        old = find_environment("python-minimal")
        old_prefix = env_build.build(old, datadir, quiet=True, log=lambda m: None)

        sched = tmp_path / "sched"
        port = free_port()
        env = {
            **os.environ,
            "DSML_ROOT": str(tree),
            "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{port}",
            "JUPYTERHUB_SERVICE_PREFIX": "/services/scheduler/",
            "JUPYTERHUB_API_TOKEN": "unused-here",
            "JUPYTERHUB_API_URL": "http://127.0.0.1:9/hub/api",
            "JUPYTER_PATH": str(datadir.jupyter_data),
        }
        service = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dsml.scheduler",
                f"--SchedulerApp.data_dir={sched}",
                "--SchedulerApp.environments=python-minimal",
                "--LocalExecutor.warm_workers=0",
            ],
            env=env,
            cwd=tmp_path,
            stdout=open(tmp_path / "service.log", "w"),
            stderr=subprocess.STDOUT,
        )
        try:
            health = f"http://127.0.0.1:{port}/services/scheduler/api/health"
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(health, timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, (tmp_path / "service.log").read_text()
                time.sleep(0.2)
            store = Store(f"sqlite:///{sched / 'scheduler.sqlite'}")
            fields = {
                "name": "pinned",
                "environment": "python-minimal",
                "environment_version": old.version,
                "parameters": {},
            }
            pinned, _ = store.create_job("ana", fields, "p.ipynb", PRINT_PREFIX, "0" * 64, {}, None)
            first = store.create_run(pinned, trigger="manual", parameters={})
            assert wait_state(store, first["id"])["state"] == "succeeded"
            assert printed_prefix(sched, first["id"]) == str(old_prefix)

            # the platform team refreshes the lock (a package dropped) and rebuilds
            drop_from_lock(tree / "images/python-minimal/requirements.txt", "webencodings")
            new = find_environment("python-minimal")
            assert new.version != old.version and "webencodings" not in new.packages
            new_prefix = env_build.build(new, datadir, quiet=True, log=lambda m: None)
            assert env_build.status(new, datadir).built_versions == tuple(
                sorted([old.version, new.version])
            )

            again = store.create_run(pinned, trigger="manual", parameters={})
            assert wait_state(store, again["id"])["state"] == "succeeded"
            assert printed_prefix(sched, again["id"]) == str(old_prefix)
            moved = {**fields, "name": "moved on", "environment_version": new.version}
            current, _ = store.create_job("ana", moved, "p.ipynb", PRINT_PREFIX, "1" * 64, {}, None)
            third = store.create_run(current, trigger="manual", parameters={})
            assert wait_state(store, third["id"])["state"] == "succeeded"
            assert printed_prefix(sched, third["id"]) == str(new_prefix)
            assert store.get_run(third["id"])["environment_version"] == new.version
        finally:
            service.terminate()
            service.wait(30)

        settings = tmp_path / "s.yaml"
        settings.write_text(yaml.safe_dump({"data_dir": str(datadir.root)}))
        shown = subprocess.run(
            DSML + ["env", "show", "python-minimal", "--json", "--settings", str(settings)],
            capture_output=True,
            text=True,
            env={**os.environ, "DSML_ROOT": str(tree)},
            check=True,
        )
        record = json.loads(shown.stdout)
        assert record["version"] == new.version
        assert record["previous"] == f"built version {old.version}"
        assert [r["name"] for r in record["changes"]["removed"]] == ["webencodings"]
        assert record["changes"]["added"] == [] and record["changes"]["upgraded"] == []
    finally:
        os.environ.pop("DSML_ROOT", None)
