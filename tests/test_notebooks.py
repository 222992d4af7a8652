"""Every notebook in training/ and shared_notebooks/ runs top to bottom under Papermill."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import papermill
import pytest

from dsml.datadir import DataDir

from conftest import ROOT

NOTEBOOKS = sorted(
    [*(ROOT / "training").glob("*.ipynb"), *(ROOT / "shared_notebooks").glob("*.ipynb")]
)

CORRECT_ANSWERS = {
    "01-welcome-to-jupyterlab.ipynb": {"answer_1": 604800, "answer_2": 385, "answer_3": "3.11"},
    "02-data-with-pandas.ipynb": {"answer_1": 3576, "answer_2": "North", "answer_3": 194583.27},
    "03-charts-and-widgets.ipynb": {"answer_1": "2025-10", "answer_2": 22564, "answer_3": 42},
}


CELL_TIMEOUT = 180
"""Seconds one cell may take; every cell of these notebooks takes well under a second."""


def execute(notebook: Path, out: Path, **kwargs: object) -> None:
    """Papermill with a per-cell deadline, and one more try when a cell's answer never came.

    On a loaded machine the client has (rarely) missed the kernel's last IOPub message and
    waited forever on an idle kernel; a cell that times out is run again once in a fresh
    kernel. A notebook that fails, or hangs twice, still fails the test.
    """
    from nbclient.exceptions import CellTimeoutError

    for attempt in (1, 2):
        try:
            papermill.execute_notebook(
                str(notebook),
                str(out),
                cwd=str(notebook.parent),
                progress_bar=False,
                execution_timeout=CELL_TIMEOUT,
                **kwargs,
            )
            return
        except CellTimeoutError:
            if attempt == 2:
                raise


@pytest.fixture
def kernels(env_datadir: DataDir, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Point Jupyter at the curated kernelspecs; keep training progress in a temporary file."""
    monkeypatch.setenv("JUPYTER_PATH", str(env_datadir.jupyter_data))
    progress = tmp_path / "progress.json"
    monkeypatch.setenv("DSML_PROGRESS_FILE", str(progress))
    return progress


def stream_text(nb: nbformat.NotebookNode) -> str:
    return "".join(
        out.get("text", "")
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.get("output_type") == "stream"
    )


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_notebook_runs_in_its_curated_kernel(notebook: Path, kernels: Path, tmp_path: Path) -> None:
    source = nbformat.read(notebook, as_version=4)
    kernel = source.metadata["kernelspec"]["name"]
    assert kernel.startswith("dsml-"), f"{notebook.name} must name a curated environment"
    assert not any(c.get("outputs") for c in source.cells if c.cell_type == "code"), (
        f"{notebook.name} is stored with outputs"
    )
    out = tmp_path / notebook.name
    execute(notebook, out, kernel_name=kernel)
    executed = nbformat.read(out, as_version=4)
    assert not any(
        o.get("output_type") == "error" for c in executed.cells for o in c.get("outputs", [])
    )


@pytest.mark.parametrize("name", sorted(CORRECT_ANSWERS))
def test_training_self_checks_pass_with_correct_answers(
    name: str, kernels: Path, tmp_path: Path
) -> None:
    notebook = ROOT / "training" / name
    out = tmp_path / name
    execute(notebook, out, parameters=CORRECT_ANSWERS[name])
    text = stream_text(nbformat.read(out, as_version=4))
    assert text.count("✅") == 3, text
    assert "❌" not in text
    progress = json.loads(kernels.read_text())
    passed = [r for r in progress["results"] if r["passed"]]
    assert len(passed) == 3


def test_training_self_checks_say_not_yet_for_starter_answers(
    kernels: Path, tmp_path: Path
) -> None:
    notebook = ROOT / "training" / "01-welcome-to-jupyterlab.ipynb"
    out = tmp_path / "out.ipynb"
    execute(notebook, out)
    text = stream_text(nbformat.read(out, as_version=4))
    assert text.count("❌") == 3 and "✅" not in text
