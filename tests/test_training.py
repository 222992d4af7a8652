"""training/: one curriculum, self-checks that record through the portal, folders that stand alone.

The portal's progress endpoint belongs to the portal service; here a small local HTTP server
stands in for it (on loopback, speaking the contract's JSON), so selfcheck's real sending, queueing
and batching are exercised without the rest of the platform. selfcheck itself runs unmocked.
"""

from __future__ import annotations

import ast
import http.server
import importlib
import json
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from conftest import ROOT

TRAINING = ROOT / "training"
CURRICULUM = json.loads((TRAINING / "curriculum.json").read_text())
NOTEBOOK_NAME = re.compile(r"^[0-9]{2}-[a-z0-9-]{1,60}\.ipynb$")
EXERCISE_ID = re.compile(r"^[A-Za-z0-9._-]{1,32}$")
TOKEN = "stand-in-token"


@pytest.fixture
def selfcheck(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # type: ignore[no-untyped-def]
    """training/selfcheck.py, freshly imported, with its progress file in a temporary folder."""
    monkeypatch.syspath_prepend(str(TRAINING))
    for name in ("JUPYTERHUB_API_TOKEN", "JUPYTERHUB_API_URL", "DSML_HUB_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DSML_PROGRESS_FILE", str(tmp_path / "progress.json"))
    sys.modules.pop("selfcheck", None)
    module = importlib.import_module("selfcheck")
    yield module
    sys.modules.pop("selfcheck", None)


# --- one curriculum ---


def test_curriculum_lists_every_notebook_in_order() -> None:
    modules = CURRICULUM["modules"]
    notebooks = sorted(p.name for p in TRAINING.glob("*.ipynb"))
    assert [m["notebook"] for m in modules] == notebooks
    assert [m["number"] for m in modules] == list(range(1, len(modules) + 1))
    assert len(modules) >= 8
    for module in modules:
        assert set(module) == {"number", "notebook", "title", "minutes", "exercises"}
        assert NOTEBOOK_NAME.match(module["notebook"])
        assert module["notebook"].startswith(f"{module['number']:02d}-")
        assert module["title"] and 10 <= module["minutes"] <= 30
        assert module["exercises"], module
        for exercise in module["exercises"]:
            assert EXERCISE_ID.match(exercise)
            assert exercise.startswith(f"{module['number']:02d}.")
    ids = [e for m in modules for e in m["exercises"]]
    assert len(ids) == len(set(ids))


def test_selfcheck_and_curriculum_have_the_same_exercises(selfcheck) -> None:  # type: ignore[no-untyped-def]
    expected = [(e, m["notebook"]) for m in CURRICULUM["modules"] for e in m["exercises"]]
    assert [(e.id, e.notebook) for e in selfcheck.EXERCISES.values()] == expected
    assert list(selfcheck.JUDGES) == [e for e, _ in expected]


@pytest.mark.parametrize("module", CURRICULUM["modules"], ids=lambda m: m["notebook"])
def test_each_notebook_checks_exactly_its_exercises(module: dict) -> None:
    nb = nbformat.read(TRAINING / module["notebook"], as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert re.findall(r'selfcheck\.check\("([^"]+)"', code) == module["exercises"]
    assert f'selfcheck.start("{module["notebook"]}", solutions)' in code
    parameters = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(parameters) == 1
    assigned = {
        t.id: n.value.value
        for n in ast.parse(parameters[0].source).body
        if isinstance(n, ast.Assign)
        for t in n.targets
    }
    assert assigned["solutions"] is False
    # it names its environment, in metadata and in words
    assert nb.metadata["kernelspec"]["name"] == "dsml-datascience"
    assert "datascience" in nb.cells[0].source and "environment" in nb.cells[0].source


# --- notebooks read only their own folder ---


@pytest.mark.parametrize("notebook", sorted(TRAINING.glob("*.ipynb")), ids=lambda p: p.name)
def test_notebooks_read_only_their_own_folder(notebook: Path) -> None:
    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        assert ".." not in cell.source, f"{notebook.name} reaches outside its folder"
        for path in re.findall(r"""["'](data/[^"']+)["']""", cell.source):
            assert (TRAINING / path).is_file(), f"{notebook.name} reads {path}, not shipped"


def test_selfcheck_reads_only_its_own_folder(selfcheck) -> None:  # type: ignore[no-untyped-def]
    for path in (selfcheck.SALES_CSV, selfcheck.CUSTOMERS_CSV, selfcheck.CURRICULUM):
        assert TRAINING in path.parents and path.is_file()


def test_training_data_is_what_its_script_makes(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(TRAINING / "data" / "generate.py"), str(tmp_path)],
        check=True,
        capture_output=True,
    )
    for name in ("sales.csv", "customers.csv"):
        assert (tmp_path / name).read_bytes() == (TRAINING / "data" / name).read_bytes(), name
    total = sum(p.stat().st_size for p in (TRAINING / "data").iterdir())
    assert total < 1_000_000, "training data should stay small (a job sends it)"


# --- recording through the portal (a stand-in server) ---


class StandInPortal(http.server.ThreadingHTTPServer):
    """The portal's progress endpoint as the contract describes it, recording what it got."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.received: list[dict] = []
        self.status = 201
        self.delay = 0.0


class _Handler(http.server.BaseHTTPRequestHandler):
    server: StandInPortal

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 - http.server's hook name
        time.sleep(self.server.delay)
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        ok = (
            self.path == "/services/portal/api/training/progress"
            and self.headers.get("Authorization") == f"token {TOKEN}"
        )
        status = self.server.status if ok else 403
        if status == 201:
            self.server.received.append(body)
            answer = {"recorded": len(body.get("results", [body]))}
        else:
            answer = {"error": "refused by the stand-in"}
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def portal() -> Iterator[StandInPortal]:
    server = StandInPortal()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def progress(selfcheck) -> dict:  # type: ignore[no-untyped-def]
    return json.loads(selfcheck.progress_file().read_text())


def test_a_check_is_recorded_locally_and_through_the_portal(
    selfcheck, portal: StandInPortal, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", TOKEN)
    monkeypatch.setenv("DSML_HUB_URL", f"http://127.0.0.1:{portal.server_port}")
    assert selfcheck.check("01.1", 7 * 24 * 3600) is True
    assert "✅" in capsys.readouterr().out
    assert selfcheck.check("01.2", 10) is False
    assert "❌ Not yet" in capsys.readouterr().out
    sent = [r for batch in portal.received for r in batch["results"]]
    assert [(r["notebook"], r["exercise"], r["passed"]) for r in sent] == [
        ("01-welcome-to-jupyterlab.ipynb", "01.1", True),
        ("01-welcome-to-jupyterlab.ipynb", "01.2", False),
    ]
    assert all(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", r["timestamp"]) for r in sent)
    data = progress(selfcheck)
    assert data["unsent"] == []
    assert {(r["exercise"], r["passed"]) for r in data["results"]} == {
        ("01.1", True),
        ("01.2", False),
    }


def test_the_hub_url_comes_from_the_hub_api_url_too(
    selfcheck, portal: StandInPortal, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", TOKEN)
    monkeypatch.setenv("JUPYTERHUB_API_URL", f"http://127.0.0.1:{portal.server_port}/hub/api")
    assert selfcheck.check("01.3", selfcheck._kernel_python()) is True
    assert portal.received[0]["results"][0]["exercise"] == "01.3"


def test_offline_results_wait_and_go_in_one_batch(
    selfcheck, portal: StandInPortal, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    # first no platform at all (a laptop), then a platform whose portal is down
    selfcheck.check("01.1", 1)
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", TOKEN)
    monkeypatch.setenv("DSML_HUB_URL", f"http://127.0.0.1:{closed_port()}")
    started = time.monotonic()
    assert selfcheck.check("01.1", 604800) is True
    assert time.monotonic() - started < 2 * selfcheck.SEND_TIMEOUT
    assert [r["exercise"] for r in progress(selfcheck)["unsent"]] == ["01.1", "01.1"]
    # the portal answers again: the queue and the new attempt go in one call
    monkeypatch.setenv("DSML_HUB_URL", f"http://127.0.0.1:{portal.server_port}")
    selfcheck.check("01.2", 385)
    assert len(portal.received) == 1
    assert [(r["exercise"], r["passed"]) for r in portal.received[0]["results"]] == [
        ("01.1", False),
        ("01.1", True),
        ("01.2", True),
    ]
    assert progress(selfcheck)["unsent"] == []


def test_a_slow_or_refusing_portal_never_breaks_a_check(
    selfcheck, portal: StandInPortal, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", TOKEN)
    monkeypatch.setenv("DSML_HUB_URL", f"http://127.0.0.1:{portal.server_port}")
    portal.delay = selfcheck.SEND_TIMEOUT + 1
    started = time.monotonic()
    assert selfcheck.check("01.1", 604800) is True
    assert time.monotonic() - started < selfcheck.SEND_TIMEOUT + 1
    assert len(progress(selfcheck)["unsent"]) == 1
    portal.delay = 0
    portal.status = 503  # down for maintenance: keep the queue
    selfcheck.check("01.2", 385)
    assert len(progress(selfcheck)["unsent"]) == 2
    portal.status = 400  # refused as bad input: sending it again would not help
    selfcheck.check("01.3", "0.1")
    assert progress(selfcheck)["unsent"] == []
    assert "❌ Not yet" in capsys.readouterr().out
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "wrong-token")  # 403: kept
    portal.status = 201
    selfcheck.check("01.3", selfcheck._kernel_python())
    assert len(progress(selfcheck)["unsent"]) == 1


def test_an_unwritable_progress_file_or_bad_answer_never_raises(
    selfcheck, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("DSML_PROGRESS_FILE", str(blocker / "progress.json"))
    assert selfcheck.check("01.1", 604800) is True
    assert selfcheck.check("no-such-exercise", 1) is False
    assert selfcheck.check("06.2", object()) is False
    assert "could not be saved" in capsys.readouterr().err


def test_the_queue_is_capped(selfcheck) -> None:  # type: ignore[no-untyped-def]
    for _ in range(selfcheck.MAX_QUEUE + 5):
        selfcheck.record(selfcheck.EXERCISES["01.1"], False)
    data = progress(selfcheck)
    assert len(data["unsent"]) == selfcheck.MAX_QUEUE
    assert len(data["results"]) == 1


# --- git inside JupyterLab (module 08) ---


def test_jupyterlab_has_git_and_notebook_diffs() -> None:
    """The platform's JupyterLab (the local user server) lists jupyterlab-git and nbdime enabled."""
    jupyter = Path(sys.executable).with_name("jupyter")
    labext = subprocess.run(
        [str(jupyter), "labextension", "list"], capture_output=True, text=True, check=True
    )
    listing = re.sub(r"\x1b\[[0-9;]*m", "", labext.stdout + labext.stderr)
    assert re.search(r"@jupyterlab/git v\S+ enabled OK", listing), listing
    assert re.search(r"nbdime-jupyterlab v\S+ enabled OK", listing), listing
    server = subprocess.run(
        [str(jupyter), "server", "extension", "list"], capture_output=True, text=True, check=True
    )
    listing = re.sub(r"\x1b\[[0-9;]*m", "", server.stdout + server.stderr)
    assert re.search(r"jupyterlab_git enabled", listing), listing
    assert re.search(r"nbdime enabled", listing), listing


def test_the_datascience_environment_has_git_and_nbdime() -> None:
    """The image's JupyterLab (datascience lock) gets the same extensions."""
    folder = ROOT / "images" / "datascience"
    wanted = {"jupyterlab-git", "nbdime"}
    declared = {
        re.split(r"[\s<>=#\[]", line, maxsplit=1)[0]
        for line in (folder / "requirements.in").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert wanted <= declared
    locked = set(re.findall(r"^([a-z0-9-]+)==", (folder / "requirements.txt").read_text(), re.M))
    assert wanted <= locked
