"""The scheduler holds against hostile and careless input, against the real platform.

Cross-site POSTs, replayed idempotency keys, reused ids, huge ids and bodies, a demoted
owner's cron job, private webhooks, what read-only viewers see, each run's own log file,
`environment_version: current`, the failing cell's index in the submitted notebook, and a
job's input folder from `dsml run --input-folder` to the notebook that reads it.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

import httpx
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook
from test_scheduler_api import NOTEBOOKS, PAPERMILL, Api

from dsml.scheduler.exceptions import BadRequest
from dsml.scheduler.notify import Notifier

from conftest import DSML, ROOT, Platform, run_async


@pytest.fixture(scope="module")
def scientist(platform: Platform) -> Api:
    return Api(platform, "scientist")


@pytest.fixture(scope="module")
def analyst(platform: Platform) -> Api:
    return Api(platform, "analyst")


def browser_session(platform: Platform, name: str) -> httpx.Client:
    """A client that logged in through the form and opened the scheduler's page (its cookie)."""
    client = httpx.Client(base_url=platform.url, timeout=30, follow_redirects=True)
    client.get("/hub/login")
    r = client.post(
        "/hub/login",
        data={
            "username": name,
            "password": platform.password(name),
            "_xsrf": client.cookies.get("_xsrf"),
        },
    )
    assert r.status_code == 200, r.text[:300]
    page = client.get("/services/scheduler/")
    assert page.status_code == 200, page.text[:300]
    return client


def test_cross_site_form_post_with_only_the_cookie_is_refused(
    platform: Platform, scientist: Api
) -> None:
    job = scientist.create_job(PAPERMILL / "simple_execute.ipynb", name="csrf target")
    session = browser_session(platform, "scientist")
    try:
        # what a form on another site sends: text/plain, the browser's cookie, no XSRF token
        r = session.post(
            f"/services/scheduler/api/jobs/{job['id']}/runs",
            content=b'{"parameters": {}}',
            headers={"Content-Type": "text/plain"},
        )
        assert r.status_code == 403, r.text
        assert r.json()["message"]
        # the service's own page sends its X-XSRFToken: that request gets through
        page = session.get("/services/scheduler/").text
        xsrf = page.split('"X-XSRFToken": "')[1].split('"')[0]
        ok = session.post(
            f"/services/scheduler/api/jobs/{job['id']}/runs",
            json={"parameters": {}},
            headers={"X-XSRFToken": xsrf},
        )
        assert ok.status_code == 201, ok.text
    finally:
        session.close()
    runs = scientist.client.get(f"jobs/{job['id']}/runs").json()
    assert runs["total"] == len(runs["runs"]) == 1


def test_idempotency_key_is_scoped_to_owner_and_endpoint(scientist: Api, analyst: Api) -> None:
    key = uuid.uuid4().hex
    nb = json.loads((PAPERMILL / "simple_execute.ipynb").read_text())
    body = {"name": "keyed", "notebook": nb, "environment": "python-minimal", "retries": 0}
    first = scientist.client.post("jobs", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == 201, first.text
    # another user replaying the key gets a job of their own, never the scientist's
    other = analyst.client.post(
        "jobs", json={**body, "name": "keyed too"}, headers={"Idempotency-Key": key}
    )
    assert other.status_code == 201, other.text
    assert other.json()["id"] != first.json()["id"]
    assert other.json()["owner"] == "analyst"
    # the same key on another endpoint is another key: it makes a run, not a replay
    run = scientist.client.post(
        f"jobs/{first.json()['id']}/runs", json={}, headers={"Idempotency-Key": key}
    )
    assert run.status_code == 201, run.text
    assert run.json()["job_id"] == first.json()["id"]
    again = scientist.client.post("jobs", json=body, headers={"Idempotency-Key": key})
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]


def test_ids_never_reused_and_deleted_outputs_gone(scientist: Api, platform: Platform) -> None:
    job = scientist.create_job(PAPERMILL / "simple_execute.ipynb", name="to delete")
    run = scientist.wait(scientist.start(job))
    assert run["state"] == "succeeded"
    folder = platform.datadir.root / "scheduler" / "runs" / str(run["id"])
    assert (folder / "output.ipynb").exists()
    assert scientist.client.delete(f"jobs/{job['id']}").status_code == 204
    assert not folder.exists()
    assert scientist.client.get(f"runs/{run['id']}").status_code == 404
    assert scientist.client.get(f"runs/{run['id']}/output.html").status_code == 404
    newer = scientist.create_job(PAPERMILL / "simple_execute.ipynb", name="after delete")
    assert newer["id"] > job["id"]
    newer_run = scientist.start(newer)
    assert newer_run["id"] > run["id"]
    scientist.wait(newer_run)


def test_a_single_run_can_be_deleted_once_it_ended(scientist: Api, platform: Platform) -> None:
    job = scientist.create_job(NOTEBOOKS / "sleeps.ipynb", name="delete one run")
    run = scientist.start(job, {"seconds": 30})
    r = scientist.client.delete(f"runs/{run['id']}")
    assert r.status_code == 409 and "cancel it first" in r.json()["message"]
    scientist.client.post(f"runs/{run['id']}/cancel")
    scientist.wait(run)
    assert scientist.client.delete(f"runs/{run['id']}").status_code == 204
    assert scientist.client.get(f"runs/{run['id']}").status_code == 404
    assert not (platform.datadir.root / "scheduler" / "runs" / str(run["id"])).exists()


@pytest.mark.parametrize(
    "path",
    [
        f"jobs/{2**63 - 1}",
        f"jobs/{2**63}",
        f"jobs/{10**30}/runs",
        f"jobs/{2**64}/versions",
        f"jobs/{2**64}/latest",
        f"runs/{2**63 - 1}",
        f"runs/{10**40}/output.html",
    ],
)
def test_ids_beyond_any_row_are_404(scientist: Api, path: str) -> None:
    r = scientist.client.get(path)
    assert r.status_code == 404, r.text
    assert r.json()["message"].startswith("no ")


@pytest.mark.parametrize(
    "query", [f"cursor={2**64}", "cursor=-1", "cursor=x", "limit=0", "limit=100000"]
)
def test_bad_cursor_or_limit_is_400(scientist: Api, query: str) -> None:
    for listing in ("jobs", "runs"):
        r = scientist.client.get(f"{listing}?{query}")
        assert r.status_code == 400, (listing, query, r.text)


def test_lists_carry_totals_and_notebook_names(scientist: Api) -> None:
    scientist.create_job(PAPERMILL / "simple_execute.ipynb", name="named notebook")
    page = scientist.client.get("jobs?limit=1").json()
    assert page["total"] >= 1 and len(page["jobs"]) == 1
    assert page["jobs"][0]["notebook_name"].endswith(".ipynb")
    assert scientist.client.get("runs?limit=1").json()["total"] >= 0


def test_body_over_the_limit_is_413_before_it_is_read(platform: Platform) -> None:
    url = urlparse(platform.url)
    with socket.create_connection((url.hostname, url.port), timeout=20) as sock:
        # a 200 MB body is announced and only its first kilobyte sent (the proxy forwards
        # the headers with the first bytes); no token either: the size is checked first
        sock.sendall(
            b"POST /services/scheduler/api/jobs HTTP/1.1\r\n"
            + f"Host: {url.netloc}\r\n".encode()
            + b"Content-Type: application/json\r\nContent-Length: 200000000\r\n\r\n"
            + b"{"
            + b" " * 1023
        )
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
        head = answer.split(b"\r\n", 1)[0].decode()
        assert " 413 " in head, answer[:500]
        rest = answer.split(b"\r\n\r\n", 1)[1]
        while b"}" not in rest:
            chunk = sock.recv(4096)
            if not chunk:
                break
            rest += chunk
    assert b"the limit of POST" in rest, rest


def test_per_user_limits_are_named(scientist: Api) -> None:
    nb = json.loads((PAPERMILL / "simple_execute.ipynb").read_text())
    base = {"name": "limits", "notebook": nb, "environment": "python-minimal"}
    r = scientist.client.post("jobs", json={**base, "retries": 1_000_000})
    assert r.status_code == 400 and "max_retries" in r.json()["message"]
    r = scientist.client.post("jobs", json={**base, "deadline_seconds": 10**8})
    assert r.status_code == 400 and "max_deadline_seconds" in r.json()["message"]
    r = scientist.client.post("jobs", json={**base, "catch_up_cap": 2**63})
    assert r.status_code == 400
    r = scientist.client.post(
        "jobs", json={**base, "notify": {"emails": [f"p{i}@example.com" for i in range(50)]}}
    )
    assert r.status_code == 400 and "max_emails" in r.json()["message"]


def test_webhooks_to_private_addresses_are_refused(scientist: Api) -> None:
    nb = json.loads((PAPERMILL / "simple_execute.ipynb").read_text())
    base = {"notebook": nb, "environment": "python-minimal"}
    for hook in ("http://127.0.0.2:9/hook", "http://10.1.2.3/hook", "http://169.254.169.254/"):
        r = scientist.client.post(
            "jobs", json={**base, "name": f"hook {hook}", "notify": {"webhook": hook}}
        )
        assert r.status_code == 400, r.text
        assert "webhook_allow" in r.json()["message"]
    job = scientist.create_job(PAPERMILL / "simple_execute.ipynb", name="hook patch")
    r = scientist.client.patch(
        f"jobs/{job['id']}", json={"notify": {"webhook": "http://localhost.:9/x"}}
    )
    assert r.status_code == 400, r.text


def test_webhook_to_loopback_refused_without_allow_list() -> None:
    async def check(notifier: Notifier, url: str) -> str:
        return await notifier.check_webhook(url)

    with pytest.raises(BadRequest, match="webhook_allow"):
        run_async(check(Notifier(), "http://127.0.0.1:8081/hub/api/users"))
    allowed = Notifier(webhook_allow=["127.0.0.1"])
    assert run_async(check(allowed, "http://127.0.0.1:9/x")) == "http://127.0.0.1:9/x"


def test_read_only_viewers_do_not_see_notify(scientist: Api, analyst: Api) -> None:
    notify = {"on": "always", "emails": ["lead@example.com"]}
    job = scientist.create_job(
        PAPERMILL / "simple_execute.ipynb",
        name="shared with notify",
        notify=notify,
        shared_with=["analysts"],
    )
    assert scientist.client.get(f"jobs/{job['id']}").json()["notify"] == notify
    seen = analyst.client.get(f"jobs/{job['id']}")
    assert seen.status_code == 200, seen.text
    assert seen.json()["notify"] is None
    listed = [j for j in analyst.client.get("jobs").json()["jobs"] if j["id"] == job["id"]]
    assert listed and listed[0]["notify"] is None


def test_each_run_logs_to_its_own_file(scientist: Api, platform: Platform) -> None:
    job = scientist.create_job(NOTEBOOKS / "sleeps.ipynb", name="own log")
    run = scientist.wait(scientist.start(job, {"seconds": 0}))
    assert run["state"] == "succeeded", run
    log = platform.datadir.root / "scheduler" / "runs" / str(run["id"]) / "run.log"
    assert log.exists()
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert not (platform.datadir.root / "scheduler" / "logs" / "workers.log").exists()


def test_environment_version_current_resolves(scientist: Api) -> None:
    job = scientist.create_job(PAPERMILL / "simple_execute.ipynb", name="env current")
    envs = scientist.client.get("environments").json()["environments"]
    current = next(e["current_version"] for e in envs if e["name"] == "python-minimal")
    r = scientist.client.patch(f"jobs/{job['id']}", json={"environment_version": "current"})
    assert r.status_code == 200, r.text
    assert r.json()["environment_version"] == current != "current"
    run = scientist.wait(scientist.start(job))
    assert run["state"] == "succeeded", run["message"]


def test_error_cell_index_is_the_submitted_notebooks(scientist: Api, tmp_path: Path) -> None:
    nb = new_notebook(
        cells=[
            new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
            new_code_cell("print(x)"),
            new_code_cell("raise ValueError('third cell')"),
        ],
        metadata={
            "kernelspec": {
                "name": "dsml-python-minimal",
                "display_name": "p",
                "language": "python",
            },
            "language_info": {"name": "python"},
        },
    )
    path = tmp_path / "third_cell_fails.ipynb"
    nbformat.write(nb, path)
    run = scientist.wait(scientist.start(scientist.create_job(path, name="third cell fails")))
    assert run["state"] == "failed"
    assert run["error"]["cell_index"] == 2
    assert run["error"]["executed_cell_index"] == 3


def cli(platform: Platform, token: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DSML_HUB_URL": platform.url, "JUPYTERHUB_API_TOKEN": token}
    return subprocess.run(
        DSML + list(args), capture_output=True, text=True, env=env, timeout=300, cwd=ROOT
    )


def test_input_folder_end_to_end(scientist: Api, platform: Platform) -> None:
    done = cli(
        platform,
        scientist.token,
        "run",
        "shared_notebooks/sales-report.ipynb",
        "--input-folder",
        "--wait",
        "--json",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    record = json.loads(done.stdout)
    job = scientist.client.get(f"jobs/{record['job_id']}").json()
    paths = {f["path"]: f for f in job["input_files"]}
    assert "data/sales.csv" in paths and len(paths["data/sales.csv"]["sha256"]) == 64
    trained = cli(
        platform,
        scientist.token,
        "run",
        "training/01-welcome-to-jupyterlab.ipynb",
        "--input-folder",
        "--wait",
    )
    assert trained.returncode == 0, trained.stdout + trained.stderr
    # without the folder the notebook cannot find its data
    bare = cli(
        platform,
        scientist.token,
        "run",
        "shared_notebooks/sales-report.ipynb",
        "--name",
        "sales without its folder",
        "--wait",
    )
    assert bare.returncode == 1, bare.stdout + bare.stderr
    assert "sales.csv" in bare.stdout


def test_bad_input_files_are_refused(scientist: Api) -> None:
    nb = json.loads((PAPERMILL / "simple_execute.ipynb").read_text())
    base = {"name": "bad inputs", "notebook": nb, "environment": "python-minimal"}
    for path in ("../x", "/etc/passwd", ".hidden", "a/.git/config", "a\x00b"):
        r = scientist.client.post(
            "jobs", json={**base, "input_files": [{"path": path, "content_base64": ""}]}
        )
        assert r.status_code == 400, (path, r.text)
    many = [{"path": f"f{i}.txt", "content_base64": ""} for i in range(501)]
    r = scientist.client.post("jobs", json={**base, "input_files": many})
    assert r.status_code == 413 and "max_input_files" in r.json()["message"]


def test_token_on_the_command_line_warns(scientist: Api, platform: Platform) -> None:
    r = cli(platform, "", "jobs", "--token", scientist.token)
    assert r.returncode == 0, r.stderr
    assert "process list" in r.stderr


def test_demoted_owner_job_is_paused_and_queued_runs_cancelled(
    platform: Platform, analyst: Api, admin_api: httpx.Client
) -> None:
    job = analyst.create_job(NOTEBOOKS / "sleeps.ipynb", name="demoted cron", schedule="* * * * *")
    going = analyst.start(job, {"seconds": 60})
    queued = analyst.start(job, {"seconds": 1})
    try:
        r = admin_api.request("DELETE", "groups/analysts/users", json={"users": ["analyst"]})
        assert r.status_code == 200, r.text
        r = admin_api.post("groups/stakeholders/users", json={"users": ["analyst"]})
        assert r.status_code == 200, r.text
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            seen = analyst.client.get(f"jobs/{job['id']}").json()
            if seen["paused"]:
                break
            time.sleep(0.5)
        assert seen["paused"] and "may no longer run jobs" in seen["paused_reason"], seen
        cancelled = analyst.client.get(f"runs/{queued['id']}").json()
        assert cancelled["state"] == "cancelled", cancelled
        assert "may no longer run jobs" in cancelled["message"]
        # and no write brings it back
        r = analyst.client.patch(f"jobs/{job['id']}", json={"paused": False})
        assert r.status_code == 403, r.text
    finally:
        admin_api.request("DELETE", "groups/stakeholders/users", json={"users": ["analyst"]})
        admin_api.post("groups/analysts/users", json={"users": ["analyst"]})
        analyst.client.post(f"runs/{going['id']}/cancel")
