"""JupyterLab's Notebook Jobs (jupyter-scheduler) on the hub's scheduler service.

The scientist's JupyterLab server answers jupyter-scheduler's REST API and UI; every job and run
lives in the scheduler service, so they are there with the same parameters, and stay there
when the server stops.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_platform import login

from conftest import ENVIRONMENTS, Platform, hub_token

NOTEBOOK = Path(__file__).parent / "notebooks" / "typed_params.ipynb"
SUFFIX = uuid.uuid4().hex[:6]
ONCE = f"labsched-once-{SUFFIX}"
NIGHTLY = f"labsched-nightly-{SUFFIX}"
SCREENSHOT = Path("/tmp/labscheduler.png")


class Lab:
    """The scientist's clients: jupyter-scheduler on their server, the service, the hub."""

    def __init__(self, platform: Platform, token: str):
        headers = {"Authorization": f"token {token}"}
        self.platform = platform
        self.server = httpx.Client(
            base_url=platform.url + "/user/scientist/", headers=headers, timeout=120
        )
        self.scheduler = httpx.Client(
            base_url=platform.url + "/user/scientist/scheduler/", headers=headers, timeout=120
        )
        self.service = httpx.Client(
            base_url=platform.url + "/services/scheduler/api/", headers=headers, timeout=60
        )
        self.hub = httpx.Client(base_url=platform.url + "/hub/api/", headers=headers, timeout=60)
        self.page: Any = None  # the scientist's logged-in Chromium page

    def service_jobs(self) -> dict[str, dict[str, Any]]:
        """The scientist's jobs in the service, by name."""
        r = self.service.get("jobs", params={"limit": "500"})
        assert r.status_code == 200, r.text
        return {job["name"]: job for job in r.json()["jobs"]}

    def service_runs(self) -> dict[int, dict[str, Any]]:
        """The scientist's runs in the service, by id."""
        r = self.service.get("runs", params={"limit": "500"})
        assert r.status_code == 200, r.text
        return {run["id"]: run for run in r.json()["runs"]}

    def wait_for_job(self, job_id: str, timeout: float = 240) -> dict[str, Any]:
        """Poll jupyter-scheduler until the job (a service run) has ended."""
        deadline = time.monotonic() + timeout
        job: dict[str, Any] = {}
        while time.monotonic() < deadline:
            r = self.scheduler.get(f"jobs/{job_id}")
            assert r.status_code == 200, r.text
            job = r.json()
            if job["status"] in ("COMPLETED", "FAILED", "STOPPED"):
                return job
            time.sleep(0.5)
        raise AssertionError(f"job {job_id} still {job.get('status')} after {timeout} s: {job}")


@pytest.fixture(scope="module")
def lab(browser, platform: Platform):
    """The scientist logged in (their JupyterLab started) with the notebook in their home."""
    page = login(browser, platform, "scientist")
    # people land on the portal's home after login; JupyterLab is a click away
    page.wait_for_url("**/services/portal/", timeout=30_000)
    page.goto(platform.url + "/hub/spawn")
    page.wait_for_url("**/user/scientist/lab**", timeout=120_000)
    page.wait_for_selector("#jp-main-dock-panel", timeout=120_000)
    client = Lab(platform, hub_token(platform, "scientist"))
    r = client.server.put(
        "api/contents/labsched.ipynb",
        json={"type": "notebook", "format": "json", "content": json.loads(NOTEBOOK.read_text())},
    )
    assert r.status_code in (200, 201), r.text
    client.page = page
    yield client
    page.context.close()


@pytest.fixture(scope="module")
def once(lab: Lab) -> str:
    """A one-off job ("Run now") created through jupyter-scheduler's API: its job id."""
    r = lab.scheduler.post(
        "jobs",
        json={
            "name": ONCE,
            "input_uri": "labsched.ipynb",
            "runtime_environment_name": "python-minimal",
            "output_formats": ["ipynb", "html"],
            "parameters": {"label": "hello lab", "count": "3", "flag": "true", "tags": "['a']"},
        },
    )
    assert r.status_code == 200, r.text
    return r.json()["job_id"]


@pytest.fixture(scope="module")
def nightly(lab: Lab) -> str:
    """A job definition with a cron schedule, created through jupyter-scheduler's API."""
    r = lab.scheduler.post(
        "job_definitions",
        json={
            "name": NIGHTLY,
            "input_uri": "labsched.ipynb",
            "runtime_environment_name": "python-minimal",
            "output_formats": ["ipynb"],
            "parameters": {"label": "nightly", "ratio": "0.25"},
            "schedule": "30 3 * * *",
            "timezone": "Europe/Berlin",
        },
    )
    assert r.status_code == 200, r.text
    return r.json()["job_definition_id"]


def test_runtime_environments_are_the_curated_ones(lab: Lab) -> None:
    r = lab.scheduler.get("runtime_environments")
    assert r.status_code == 200, r.text
    names = [env["name"] for env in r.json()]
    assert sorted(names) == sorted(ENVIRONMENTS)
    service = lab.service.get("environments").json()["environments"]
    assert sorted(names) == sorted(env["name"] for env in service)
    for env in r.json():
        assert {f["name"] for f in env["output_formats"]} == {"ipynb", "html"}


def test_one_off_job_runs_in_the_service_with_its_parameters(lab: Lab, once: str) -> None:
    run_id = int(once.removeprefix("run-"))
    run = lab.service_runs()[run_id]
    typed = {"label": "hello lab", "count": 3, "flag": True, "tags": ["a"]}
    assert run["parameters"] == typed
    assert run["environment"] == "python-minimal"
    job = lab.service_jobs()[f"{ONCE} (ad hoc)"]
    assert job["id"] == run["job_id"] and job["schedule"] is None
    assert job["parameters"] == typed

    ended = lab.wait_for_job(once)
    assert ended["status"] == "COMPLETED", ended
    assert ended["parameters"] == {
        "label": "hello lab",
        "count": "3",
        "flag": "true",
        "tags": "['a']",
    }
    assert lab.service.get(f"runs/{run_id}").json()["state"] == "succeeded"
    listed = lab.scheduler.get("jobs", params={"max_items": "100"}).json()["jobs"]
    assert once in {j["job_id"] for j in listed}

    # "Download job files" writes the service's outputs into the home folder
    r = lab.scheduler.get(f"jobs/{once}/download_files", params={"redownload": "false"})
    assert r.status_code == 204, r.text
    files = {
        f["file_format"]: f["file_path"]
        for f in lab.scheduler.get(f"jobs/{once}").json()["job_files"]
    }
    assert files["ipynb"] and files["html"], files
    out = lab.server.get(f"api/contents/{files['ipynb']}").json()["content"]
    printed = "".join(
        "".join(o.get("text", "")) for c in out["cells"] for o in c.get("outputs", [])
    )
    assert "hello lab" in printed and "'count': 3" in printed


def test_job_definition_is_a_scheduled_service_job(lab: Lab, nightly: str) -> None:
    job = lab.service_jobs()[NIGHTLY]
    assert nightly == f"job-{job['id']}"
    assert job["schedule"] == "30 3 * * *" and job["timezone"] == "Europe/Berlin"
    assert job["parameters"] == {"label": "nightly", "ratio": 0.25}
    assert job["next_run_at"] and not job["paused"]

    listed = lab.scheduler.get("job_definitions").json()["job_definitions"]
    mine = next(d for d in listed if d["job_definition_id"] == nightly)
    assert mine["name"] == NIGHTLY and mine["input_filename"] == "labsched.ipynb"
    assert mine["parameters"] == {"label": "nightly", "ratio": "0.25"} and mine["active"]

    # pause and resume from the UI are the job's `paused`
    assert (
        lab.scheduler.patch(f"job_definitions/{nightly}", json={"active": False}).status_code == 204
    )
    assert lab.service.get(f"jobs/{job['id']}").json()["paused"] is True
    assert lab.scheduler.get(f"job_definitions/{nightly}").json()["active"] is False
    assert (
        lab.scheduler.patch(f"job_definitions/{nightly}", json={"active": True}).status_code == 204
    )
    assert lab.service.get(f"jobs/{job['id']}").json()["paused"] is False

    # "Run Job" on the definition: a run of the same service job, parameters overridden
    r = lab.scheduler.post(f"job_definitions/{nightly}/jobs", json={"parameters": {"count": "7"}})
    assert r.status_code == 200, r.text
    run_id = int(r.json()["job_id"].removeprefix("run-"))
    run = lab.service.get(f"runs/{run_id}").json()
    assert run["job_id"] == job["id"]
    assert run["parameters"] == {"label": "nightly", "ratio": 0.25, "count": 7}
    runs = lab.scheduler.get("jobs", params={"job_definition_id": nightly}).json()["jobs"]
    assert [j["job_id"] for j in runs] == [f"run-{run_id}"]
    assert lab.wait_for_job(f"run-{run_id}")["status"] == "COMPLETED"


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        (
            "jobs",
            {"name": "bad-env", "runtime_environment_name": "no-such-env"},
            400,
            "'no-such-env' is not a curated environment; use one of",
        ),
        (
            "jobs",
            {"name": "bad-param", "parameters": {"count": "three"}},
            400,
            "parameter 'count' is an int: 'three' is not one",
        ),
        (
            "job_definitions",
            {"name": "bad-cron", "schedule": "every day", "timezone": "UTC"},
            400,
            "is not a 5-field cron expression",
        ),
        (
            "job_definitions",
            {"name": NIGHTLY, "schedule": "0 4 * * *", "timezone": "UTC"},
            409,
            "",
        ),
        (
            "jobs",
            {"name": "missing", "input_uri": "no-such.ipynb"},
            400,
            "'no-such.ipynb' does not exist",
        ),
    ],
)
def test_bad_requests_get_the_service_status_and_message(
    lab: Lab, nightly: str, path: str, body: dict[str, Any], status: int, message: str
) -> None:
    payload = {
        "input_uri": "labsched.ipynb",
        "runtime_environment_name": "python-minimal",
        "output_formats": ["ipynb"],
        **body,
    }
    r = lab.scheduler.post(path, json=payload)
    assert r.status_code == status, r.text
    assert message in r.json()["message"]
    assert "Unexpected error" not in r.json()["message"]


def test_a_run_cannot_be_deleted_alone(lab: Lab, once: str) -> None:
    r = lab.scheduler.delete(f"jobs/{once}")
    assert r.status_code == 405, r.text
    assert "delete the job definition" in r.json()["message"]
    assert lab.scheduler.get(f"jobs/{once}").status_code == 200


def test_notebook_jobs_panel_lists_the_jobs(lab: Lab, once: str, nightly: str) -> None:
    page = lab.page
    page.goto(lab.platform.url + "/user/scientist/lab?reset")
    card = page.locator(".jp-LauncherCard[title='Jobs']")
    card.wait_for(timeout=120_000)
    card.click()
    panel = page.locator(".jp-notebook-jobs-panel")
    panel.wait_for(timeout=60_000)
    panel.get_by_text(f"{ONCE} (ad hoc)").first.wait_for(timeout=60_000)
    assert panel.get_by_text("Completed").count() >= 1
    page.screenshot(path=str(SCREENSHOT))
    panel.get_by_role("tab", name="Job Definitions").click()
    panel.get_by_text(NIGHTLY).first.wait_for(timeout=60_000)


def test_jobs_stay_in_the_service_when_the_server_stops(lab: Lab, once: str, nightly: str) -> None:
    r = lab.hub.delete("users/scientist/server")
    assert r.status_code in (202, 204), r.text
    deadline = time.monotonic() + 120
    while True:
        user = lab.hub.get("users/scientist").json()
        # the default server (JupyterLab); the scientist's app servers may run on
        if "" not in user["servers"]:
            break
        assert time.monotonic() < deadline, f"scientist's server still up: {user['servers']}"
        time.sleep(0.5)
    assert lab.server.get("api/status", follow_redirects=False).status_code != 200

    jobs = lab.service_jobs()
    assert jobs[NIGHTLY]["schedule"] == "30 3 * * *" and not jobs[NIGHTLY]["paused"]
    assert f"{ONCE} (ad hoc)" in jobs
    runs = lab.service_runs()
    once_run = runs[int(once.removeprefix("run-"))]
    assert once_run["state"] == "succeeded" and once_run["has_output"]
    nightly_runs = [r for r in runs.values() if r["job_id"] == jobs[NIGHTLY]["id"]]
    assert [r["state"] for r in nightly_runs] == ["succeeded"]
    assert lab.service.get(f"runs/{once_run['id']}/output.html").status_code == 200
