"""The scheduler service through its REST API and CLI, against the real platform.

Papermill's own test notebooks must end the way Papermill defines; our fault notebooks
(dying kernel, input(), huge output, deadline, cancel) each end in their own state.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import CORPUS, DSML, Platform, hub_token

NOTEBOOKS = Path(__file__).parent / "notebooks"
PAPERMILL = CORPUS / "papermill"
FINAL = ("succeeded", "failed", "timed_out", "cancelled", "lost", "skipped")


def outputs_text(nb: dict[str, Any]) -> str:
    """Every stream text of a notebook's code cells (stored as a string or a list of lines)."""
    parts = []
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            text = out.get("text", "")
            parts.append("".join(text) if isinstance(text, list) else text)
    return "".join(parts)


class Api:
    """A user's client of the scheduler API."""

    def __init__(self, platform: Platform, name: str):
        self.name = name
        self.token = hub_token(platform, name)
        self.client = httpx.Client(
            base_url=platform.url + "/services/scheduler/api/",
            headers={"Authorization": f"token {self.token}"},
            timeout=60,
        )

    def create_job(self, notebook: Path, **fields: Any) -> dict[str, Any]:
        body = {
            "name": fields.pop("name", notebook.stem),
            "notebook": json.loads(notebook.read_text()),
            "notebook_name": notebook.name,
            "environment": fields.pop("environment", "python-minimal"),
            "retries": fields.pop("retries", 0),
            **fields,
        }
        r = self.client.post("jobs", json=body)
        assert r.status_code == 201, r.text
        return r.json()

    def start(self, job: dict[str, Any], parameters: dict | None = None) -> dict[str, Any]:
        r = self.client.post(f"jobs/{job['id']}/runs", json={"parameters": parameters or {}})
        assert r.status_code == 201, r.text
        return r.json()

    def wait(self, run: dict[str, Any], timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.client.get(f"runs/{run['id']}").json()
            if run["state"] in FINAL:
                return run
            time.sleep(0.25)
        raise AssertionError(f"run {run['id']} still {run['state']} after {timeout} s")


@pytest.fixture(scope="module")
def scientist(platform: Platform) -> Api:
    return Api(platform, "scientist")


@pytest.fixture(scope="module")
def analyst(platform: Platform) -> Api:
    return Api(platform, "analyst")


def run_many(api: Api, names: list[str], folder: Path = PAPERMILL, **fields) -> dict[str, dict]:
    """Submit every notebook, then wait for all (the service runs them side by side)."""
    runs = {}
    for name in names:
        job = api.create_job(folder / f"{name}.ipynb", name=f"corpus {name}", **fields)
        runs[name] = api.start(job)
    return {name: api.wait(run) for name, run in runs.items()}


def test_papermill_successes(scientist: Api) -> None:
    names = ["simple_execute", "nb_version_4.4", "blank-vscode", "report_mode_test"]
    names += ["result_no_exec", "sysexit", "sysexit0", "systemexit"]
    for name, run in run_many(scientist, names).items():
        assert run["state"] == "succeeded", (name, run["message"], run["log_tail"])
        assert run["has_output"], name
        assert [e["state"] for e in run["events"]] == ["queued", "starting", "running", "succeeded"]


def test_papermill_failures_mark_the_cell(scientist: Api, platform: Platform) -> None:
    runs = run_many(scientist, ["broken", "broken1", "broken2", "line_magic_error", "sysexit1"])
    for name, run in runs.items():
        assert run["state"] == "failed", (name, run)
        assert run["failure_kind"] == "user"
        assert run["error"]["cell_index"] is not None, name
        assert run["error"]["name"], name
        # the executed notebook is kept, with the failing cell marked
        r = scientist.client.get(f"runs/{run['id']}/output.ipynb")
        assert r.status_code == 200
        nb = r.json()
        marked = [c for c in nb["cells"] if c["metadata"].get("papermill", {}).get("exception")]
        assert marked, name
        html = scientist.client.get(f"runs/{run['id']}/output.html")
        assert html.status_code == 200 and "<html" in html.text.lower()
    assert runs["sysexit1"]["error"]["name"] == "SystemExit"


def test_missing_parameters_cell_injects_at_the_top(scientist: Api) -> None:
    job = scientist.create_job(PAPERMILL / "no_parameters.ipynb", name="no params")
    assert job["parameter_schema"] == {}
    run = scientist.wait(scientist.start(job))
    assert run["state"] == "succeeded"
    nb = scientist.client.get(f"runs/{run['id']}/output.ipynb").json()
    assert "injected-parameters" in nb["cells"][0]["metadata"]["tags"]
    assert "scheduled_for" in "".join(nb["cells"][0]["source"])


def test_typed_parameter_inspection(scientist: Api) -> None:
    nb = json.loads((PAPERMILL / "complex_parameters.ipynb").read_text())
    r = scientist.client.post("inspect", json={"notebook": nb})
    assert r.status_code == 200, r.text
    schema = r.json()["parameters"]
    assert schema["a"]["type"] == "float" and schema["a"]["help"] == "Variable a"
    assert schema["b"]["type"] == "list" and schema["b"]["inferred_type"] == "List[str]"
    assert schema["msg"]["type"] == "any"


def test_parameters_are_validated_and_injected_typed(scientist: Api) -> None:
    job = scientist.create_job(NOTEBOOKS / "typed_params.ipynb", name="typed")
    r = scientist.client.post(f"jobs/{job['id']}/runs", json={"parameters": {"count": "3"}})
    assert r.status_code == 400
    assert r.json() == {
        "status": 400,
        "message": "parameter 'count' must be of type int (declared int), got str '3'",
    }
    r = scientist.client.post(f"jobs/{job['id']}/runs", json={"parameters": {"colour": 1}})
    assert r.status_code == 400 and "unknown parameter 'colour'" in r.json()["message"]
    run = scientist.start(
        job, {"label": "a'b\"c", "tags": [1, 2], "count": 3, "ratio": 2, "flag": True}
    )
    run = scientist.wait(run)
    assert run["state"] == "succeeded", run
    nb = scientist.client.get(f"runs/{run['id']}/output.ipynb").json()
    printed = outputs_text(nb)
    assert "'label': 'a\\'b\"c', 'tags': [1, 2], 'count': 3, 'ratio': 2, 'flag': True" in printed
    assert "'scheduled_for': '20" in printed


def test_cli_reads_values_by_declared_type(scientist: Api, platform: Platform) -> None:
    env = {**os.environ, "DSML_HUB_URL": platform.url, "JUPYTERHUB_API_TOKEN": scientist.token}
    nb = str(NOTEBOOKS / "typed_params.ipynb")
    ok = subprocess.run(
        DSML
        + ["run", nb, "-p", "label=abc", "-p", "tags=[1, 2]", "-p", "count=7", "--wait", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert ok.returncode == 0, ok.stderr
    record = json.loads(ok.stdout)
    assert record["state"] == "succeeded"
    assert record["html_url"].startswith(platform.url)
    out = httpx.get(
        record["notebook_url"], headers={"Authorization": f"token {scientist.token}"}, timeout=30
    ).json()
    printed = outputs_text(out)
    assert "'label': 'abc', 'tags': [1, 2], 'count': 7" in printed
    bad = subprocess.run(
        DSML + ["run", nb, "-p", "count=x"], capture_output=True, text=True, env=env, timeout=60
    )
    assert bad.returncode == 2
    assert bad.stderr.strip() == "dsml run: error: parameter 'count' is an int: 'x' is not one"


def test_cli_run_exit_code_and_json_on_failure(scientist: Api, platform: Platform) -> None:
    env = {**os.environ, "DSML_HUB_URL": platform.url, "JUPYTERHUB_API_TOKEN": scientist.token}
    result = subprocess.run(
        DSML + ["run", str(PAPERMILL / "broken1.ipynb"), "--wait", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert result.returncode == 1
    record = json.loads(result.stdout)
    assert record["state"] == "failed"
    assert record["error_cell_index"] is not None and record["error_name"]
    assert record["notebook_url"] and record["html_url"]


def test_kernel_death_is_an_infrastructure_failure_and_is_retried(scientist: Api) -> None:
    job = scientist.create_job(
        NOTEBOOKS / "kernel_dies.ipynb", name="dies", retries=1, retry_backoff_seconds=0
    )
    first = scientist.wait(scientist.start(job))
    assert first["state"] == "failed"
    assert first["failure_kind"] == "infra"
    assert first["error"]["name"] == "DeadKernelError"
    runs = scientist.client.get(f"jobs/{job['id']}/runs").json()["runs"]
    retry = next(r for r in runs if r["retry_of"] == first["id"])
    retry = scientist.wait(retry)
    assert retry["attempt"] == 2 and retry["state"] == "failed"
    # retries 1: no third attempt
    time.sleep(1)
    runs = scientist.client.get(f"jobs/{job['id']}/runs").json()["runs"]
    assert len(runs) == 2


def test_input_call_fails_with_a_clear_error(scientist: Api) -> None:
    run = scientist.wait(scientist.start(scientist.create_job(NOTEBOOKS / "asks_input.ipynb")))
    assert run["state"] == "failed"
    assert run["error"]["name"] == "StdinNotImplementedError"
    assert run["error"]["cell_index"] is not None


def test_huge_output_is_refused_with_a_clear_error(scientist: Api) -> None:
    run = scientist.wait(scientist.start(scientist.create_job(NOTEBOOKS / "huge_output.ipynb")))
    assert run["state"] == "failed"
    assert run["error"]["name"] == "OutputTooLarge"
    assert "over the 2,000,000 byte limit" in run["error"]["value"]
    assert scientist.client.get(f"runs/{run['id']}/output.ipynb").status_code == 404


def test_deadline_times_out_and_kills_the_worker(scientist: Api) -> None:
    job = scientist.create_job(NOTEBOOKS / "sleeps.ipynb", name="deadline", deadline_seconds=4)
    run = scientist.wait(scientist.start(job, {"seconds": 120}), timeout=60)
    assert run["state"] == "timed_out"
    assert run["failure_kind"] == "deadline"
    assert run["duration_seconds"] < 30


def test_cancel_during_sleep_stops_worker_and_kernel(scientist: Api, tmp_path: Path) -> None:
    marker = tmp_path / "kernel.pid"
    job = scientist.create_job(NOTEBOOKS / "writes_marker.ipynb", name="cancel me")
    run = scientist.start(job, {"marker": str(marker), "seconds": 120})
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    kernel_pid = int(marker.read_text())
    r = scientist.client.post(f"runs/{run['id']}/cancel")
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "cancelled"
    time.sleep(0.5)
    assert (
        not Path(f"/proc/{kernel_pid}").exists()
        or "Z" in Path(f"/proc/{kernel_pid}/stat").read_text().split(")")[1][:3]
    )
    again = scientist.client.post(f"runs/{run['id']}/cancel")
    assert again.status_code == 409
    assert again.json()["message"] == (
        f"run {run['id']} is cancelled already; only active runs can be cancelled"
    )


def test_users_see_only_their_own_jobs(scientist: Api, analyst: Api, platform: Platform) -> None:
    job = scientist.create_job(PAPERMILL / "simple_execute.ipynb", name="private")
    run = scientist.start(job)
    assert analyst.client.get(f"jobs/{job['id']}").status_code == 404
    assert analyst.client.get(f"runs/{run['id']}").status_code == 404
    assert analyst.client.post(f"runs/{run['id']}/cancel").status_code == 404
    assert job["id"] not in [j["id"] for j in analyst.client.get("jobs").json()["jobs"]]
    shared = scientist.create_job(
        PAPERMILL / "simple_execute.ipynb", name="shared", shared_with=["analysts"]
    )
    assert analyst.client.get(f"jobs/{shared['id']}").status_code == 200
    r = analyst.client.patch(f"jobs/{shared['id']}", json={"paused": True})
    assert r.status_code == 403 and "read-only" in r.json()["message"]
    anonymous = httpx.get(platform.url + "/services/scheduler/api/jobs", timeout=30)
    assert anonymous.status_code == 403
    assert anonymous.json()["status"] == 403
    stakeholder = Api(platform, "stakeholder")
    r = stakeholder.client.post(
        "jobs",
        json={
            "name": "x",
            "notebook": json.loads((PAPERMILL / "simple_execute.ipynb").read_text()),
            "environment": "python-minimal",
        },
    )
    assert r.status_code == 403
    scientist.wait(run)


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (
            {"name": "x", "notebook": "not json", "environment": "python-minimal"},
            400,
            "notebook: not JSON (line 1 column 1",
        ),
        (
            {"name": "x", "notebook": {}, "environment": "nope"},
            400,
            "environment 'nope' is not a curated environment; use one of",
        ),
        (
            {"name": "x", "notebook": {}, "environment": "python-minimal", "schedule": "every day"},
            400,
            "schedule 'every day' is not a 5-field cron expression",
        ),
        (
            {
                "name": "x",
                "notebook": {},
                "environment": "python-minimal",
                "schedule": "0 6 * * *",
                "timezone": "Mars/Olympus",
            },
            400,
            "timezone 'Mars/Olympus' is not an IANA timezone",
        ),
        (
            {"name": "x", "notebook": {}, "environment": "python-minimal", "colour": 1},
            400,
            "unknown field(s) colour",
        ),
        (
            {"name": "x", "notebook": "x" * 6_000_000, "environment": "python-minimal"},
            413,
            "notebook is 6,000,000 bytes; the limit is 5,242,880",
        ),
    ],
)
def test_bad_job_requests(scientist: Api, body: dict, status: int, message: str) -> None:
    r = scientist.client.post("jobs", json=body)
    assert r.status_code == status, r.text
    assert r.json()["status"] == status
    assert message in r.json()["message"]


def test_notebook_updates_are_versions_and_can_roll_back(scientist: Api) -> None:
    job = scientist.create_job(NOTEBOOKS / "typed_params.ipynb", name="versions")
    nb = json.loads((NOTEBOOKS / "typed_params.ipynb").read_text())
    nb["cells"][1]["source"] = "result = 'version two'"
    updated = scientist.client.patch(f"jobs/{job['id']}", json={"notebook": nb}).json()
    assert updated["version"] == 2
    versions = scientist.client.get(f"jobs/{job['id']}/versions").json()
    assert [v["version"] for v in versions["versions"]] == [2, 1]
    back = scientist.client.post(f"jobs/{job['id']}/versions", json={"version": 1}).json()
    assert back["version"] == 1
    run = scientist.wait(scientist.start(job))
    assert run["job_version"] == 1 and run["state"] == "succeeded"


def test_idempotency_key_makes_create_safe_to_retry(scientist: Api) -> None:
    body = {
        "name": "idempotent",
        "notebook": json.loads((PAPERMILL / "simple_execute.ipynb").read_text()),
        "environment": "python-minimal",
    }
    headers = {"Idempotency-Key": "create-once-123"}
    first = scientist.client.post("jobs", json=body, headers=headers)
    second = scientist.client.post("jobs", json=body, headers=headers)
    assert first.status_code == 201 and second.status_code == 200
    assert first.json()["id"] == second.json()["id"]
    dup = scientist.client.post("jobs", json=body)
    assert dup.status_code == 409


def test_latest_successful_run_link_and_metrics(scientist: Api, platform: Platform) -> None:
    job = scientist.create_job(PAPERMILL / "simple_execute.ipynb", name="latest")
    assert scientist.client.get(f"jobs/{job['id']}/latest").status_code == 404
    run = scientist.wait(scientist.start(job))
    latest = scientist.client.get(f"jobs/{job['id']}/latest").json()
    assert latest["id"] == run["id"]
    html = scientist.client.get(f"jobs/{job['id']}/latest/output.html", follow_redirects=True)
    assert html.status_code == 200 and "<html" in html.text.lower()
    metrics = httpx.get(platform.url + "/services/scheduler/metrics", timeout=30).text
    assert 'dsml_scheduler_runs_finished_total{state="succeeded"}' in metrics
    assert "dsml_scheduler_queue_depth" in metrics
