"""`dsml migrate-check`: a legacy notebook whose stored results differ is reported cell by cell;
an unchanged notebook reports none; garbage input is one line and exit code 2."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import nbformat
import papermill
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from dsml.datadir import DataDir

from conftest import DSML, Platform, free_port, hub_token, write_settings

CELLS = [
    "from sklearn.datasets import make_classification\n"
    "from sklearn.linear_model import LogisticRegression\n"
    "X, y = make_classification(n_samples=300, random_state=0)\n"
    "model = LogisticRegression(max_iter=500).fit(X, y)",
    "print(model.predict_proba(X[:3]).round(6))",
    "print('accuracy', round(model.score(X, y), 6))",
    "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [3, 1, 2])\nplt.show()",
    "print('rows', len(X))",
]


@pytest.fixture(scope="module")
def executed(env_datadir: DataDir, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The notebook run once in datascience: its stored outputs are 'the results to keep'."""
    folder = tmp_path_factory.mktemp("migrate")
    source = folder / "model.ipynb"
    nb = new_notebook(
        cells=[new_code_cell(c) for c in CELLS],
        metadata={
            "kernelspec": {"name": "dsml-datascience", "display_name": "ds", "language": "python"}
        },
    )
    nbformat.write(nb, source)
    before = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = str(env_datadir.jupyter_data)
    try:
        out = folder / "unchanged.ipynb"
        papermill.execute_notebook(str(source), str(out), progress_bar=False, cwd=str(folder))
    finally:
        if before is None:
            os.environ.pop("JUPYTER_PATH", None)
        else:
            os.environ["JUPYTER_PATH"] = before
    return out


def settings_for(env_datadir: DataDir, tmp_path: Path) -> str:
    return str(write_settings(tmp_path / "s.yaml", env_datadir.root, free_port()))


def check(nb: Path, settings: str, *extra: str, env: dict | None = None):
    return subprocess.run(
        DSML
        + [
            "migrate-check",
            str(nb),
            "--env",
            "datascience",
            "--settings",
            settings,
            "--json",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def test_unchanged_notebook_reports_no_difference(executed: Path, env_datadir, tmp_path) -> None:
    result = check(executed, settings_for(env_datadir, tmp_path), "--local")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["differences"] == []
    assert report["cells_compared"] == 4  # the first cell prints nothing
    assert report["executed_on"] == "local"


def test_legacy_predictions_are_reported_with_their_cells(
    executed: Path, env_datadir, tmp_path
) -> None:
    legacy = json.loads(executed.read_text())
    code = [c for c in legacy["cells"] if c["cell_type"] == "code"]
    # what an older scikit-learn stored: other probabilities and another accuracy
    code[1]["outputs"] = [
        {
            "output_type": "stream",
            "name": "stdout",
            "text": "[[0.912 0.088]\n [0.103 0.897]\n [0.5   0.5  ]]\n",
        }
    ]
    stored_accuracy = "".join(code[2]["outputs"][0]["text"])
    code[2]["outputs"][0]["text"] = stored_accuracy.replace("accuracy 0.", "accuracy 0.0")
    path = tmp_path / "legacy.ipynb"
    path.write_text(json.dumps(legacy))
    report_html = tmp_path / "report.html"
    result = check(
        path, settings_for(env_datadir, tmp_path), "--local", "--report", str(report_html)
    )
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    cells = {d["cell_index"]: d for d in report["differences"]}
    assert set(cells) == {1, 2}
    assert cells[1]["kind"] in ("numbers", "text")
    assert cells[2]["kind"] == "numbers" and "became" in cells[2]["detail"]
    html = report_html.read_text()
    assert "2 of 4 compared cells differ" in html and "0.912" in html


def test_small_numeric_noise_is_within_tolerance(executed: Path, env_datadir, tmp_path) -> None:
    nb = json.loads(executed.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    text = "".join(code[2]["outputs"][0]["text"])
    value = float(text.split()[1])
    code[2]["outputs"][0]["text"] = f"accuracy {value * (1 + 1e-9)!r}\n"
    path = tmp_path / "noisy.ipynb"
    path.write_text(json.dumps(nb))
    result = check(path, settings_for(env_datadir, tmp_path), "--local", "--rtol", "1e-6")
    assert result.returncode == 0, result.stdout


def test_through_the_scheduler(executed: Path, env_datadir, platform: Platform, tmp_path) -> None:
    env = {
        **os.environ,
        "DSML_HUB_URL": platform.url,
        "JUPYTERHUB_API_TOKEN": hub_token(platform, "scientist"),
    }
    result = check(executed, settings_for(env_datadir, tmp_path), env=env)
    assert result.returncode == 0, result.stderr + result.stdout
    assert json.loads(result.stdout)["executed_on"] == "hub"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not json at all", "not JSON"),
        (b'{"a": 1}', "JSON but not a notebook (found an object without 'cells')"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00", "a binary file"),
    ],
)
def test_garbage_input(tmp_path: Path, content: bytes, message: str) -> None:
    bad = tmp_path / "bad.ipynb"
    bad.write_bytes(content)
    result = subprocess.run(
        DSML + ["migrate-check", str(bad), "--env", "datascience"], capture_output=True, text=True
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr


def test_huge_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    huge = tmp_path / "huge.ipynb"
    with open(huge, "wb") as f:
        f.truncate(200 * 1024 * 1024)
    result = subprocess.run(
        DSML + ["migrate-check", str(huge), "--env", "datascience"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "over the 52,428,800 byte limit" in result.stderr
