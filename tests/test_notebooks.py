"""Every training notebook runs top to bottom under Papermill in its curated kernel.

Twice: as shipped (it must finish; ❌ lines are fine) and with ``solutions=True`` (every self-check
must print ✅). Each run happens in a copy of the training folder, the way a job gets it with
``dsml run NB --input-folder``: a notebook that reads a file outside its own folder fails here.
The shared notebooks have their own test (tests/test_shared_notebooks.py).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import papermill
import pytest

from dsml.datadir import DataDir
from dsml.kernelclient import SteadyKernelManager

from conftest import ROOT

TRAINING = ROOT / "training"
NOTEBOOKS = sorted(TRAINING.glob("[0-9][0-9]-*.ipynb"))
CURRICULUM = json.loads((TRAINING / "curriculum.json").read_text())
EXERCISES = {m["notebook"]: m["exercises"] for m in CURRICULUM["modules"]}

CELL_TIMEOUT = 180
"""Seconds one cell may take; every cell of these notebooks takes a few seconds at most."""


def execute(notebook: Path, out: Path, **kwargs: object) -> None:
    """Papermill with a per-cell deadline, on the platform's steady kernel client.

    The client is the one jobs and apps run on (`dsml.kernelclient`): nbclient's plain one
    could miss a reply on a loaded machine and wait forever on an idle kernel.
    """
    papermill.execute_notebook(
        str(notebook),
        str(out),
        cwd=str(notebook.parent),
        progress_bar=False,
        execution_timeout=CELL_TIMEOUT,
        kernel_manager_class=SteadyKernelManager,
        **kwargs,
    )


@pytest.fixture
def kernels(env_datadir: DataDir, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Point Jupyter at the curated kernelspecs; keep training progress in a temporary file.

    No platform token reaches the kernel: these runs are the offline case.
    """
    monkeypatch.setenv("JUPYTER_PATH", str(env_datadir.jupyter_data))
    for name in ("JUPYTERHUB_API_TOKEN", "JUPYTERHUB_API_URL", "DSML_HUB_URL"):
        monkeypatch.delenv(name, raising=False)
    progress = tmp_path / "progress.json"
    monkeypatch.setenv("DSML_PROGRESS_FILE", str(progress))
    return progress


def job_folder(tmp_path: Path) -> Path:
    """A copy of training/ alone, as a job's input folder: nothing beside it to reach for."""
    folder = tmp_path / "job" / "training"
    shutil.copytree(TRAINING, folder, ignore=shutil.ignore_patterns("__pycache__", ".*"))
    return folder


def stream_text(nb: nbformat.NotebookNode) -> str:
    return "".join(
        out.get("text", "")
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.get("output_type") == "stream" and out.get("name") == "stdout"
    )


def errors(nb: nbformat.NotebookNode) -> list[str]:
    return [
        f"{o.get('ename')}: {o.get('evalue')}"
        for c in nb.cells
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_as_shipped(notebook: Path, kernels: Path, tmp_path: Path) -> None:
    source = nbformat.read(notebook, as_version=4)
    kernel = source.metadata["kernelspec"]["name"]
    assert kernel == "dsml-datascience", f"{notebook.name} must name its curated environment"
    assert not any(c.get("outputs") for c in source.cells if c.cell_type == "code"), (
        f"{notebook.name} is stored with outputs"
    )
    folder = job_folder(tmp_path)
    out = tmp_path / notebook.name
    execute(folder / notebook.name, out, kernel_name=kernel)
    executed = nbformat.read(out, as_version=4)
    assert not errors(executed)
    text = stream_text(executed)
    # every exercise is checked, and as shipped none is answered
    assert text.count("❌") == len(EXERCISES[notebook.name]), text
    assert "✅" not in text
    progress = json.loads(kernels.read_text())
    assert {r["exercise"] for r in progress["results"]} == set(EXERCISES[notebook.name])
    assert not any(r["passed"] for r in progress["results"])


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_every_check_passes_with_solutions(notebook: Path, kernels: Path, tmp_path: Path) -> None:
    folder = job_folder(tmp_path)
    out = tmp_path / notebook.name
    execute(folder / notebook.name, out, parameters={"solutions": True})
    executed = nbformat.read(out, as_version=4)
    assert not errors(executed)
    text = stream_text(executed)
    assert text.count("✅") == len(EXERCISES[notebook.name]), text
    assert "❌" not in text
    progress = json.loads(kernels.read_text())
    passed = {r["exercise"] for r in progress["results"] if r["passed"]}
    assert passed == set(EXERCISES[notebook.name])
    # offline: every attempt waits in the queue for the portal
    assert [r["exercise"] for r in progress["unsent"]] == EXERCISES[notebook.name]
    # the solutions wrote nothing into the learner's folder but the starters modules 06 and 07
    # write for the learner to complete
    written = {p.name for p in folder.iterdir()} - {p.name for p in TRAINING.iterdir()}
    assert written <= {"__pycache__", "weekly-revenue.ipynb", "revenue-app.ipynb"}
