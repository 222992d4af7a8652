"""Re-running `dsml up` on the same data dir keeps every user, group, file, secret and session."""

from __future__ import annotations

import json
import os
import subprocess
import time

import httpx
from test_scheduler_api import NOTEBOOKS, Api

from conftest import DSML, DataDir, running_platform


def form_login(url: str, name: str, password: str) -> httpx.Client:
    """Log in by posting the login form (with its XSRF token), as the browser does."""
    client = httpx.Client(base_url=url, timeout=30, follow_redirects=False)
    client.get("/hub/login")
    xsrf = client.cookies.get("_xsrf")
    r = client.post(
        "/hub/login",
        data={"username": name, "password": password, "_xsrf": xsrf},
    )
    assert r.status_code == 302, r.text[:500]
    return client


def test_restart_keeps_users_groups_files_and_sessions(env_datadir: DataDir, tmp_path) -> None:
    data = tmp_path / "data"
    with running_platform(tmp_path / "first", data) as first:
        env = {**os.environ, "DSML_HUB_URL": first.url, "DSML_ADMIN_TOKEN": first.admin_token}
        added = json.loads(
            subprocess.run(
                DSML + ["users", "add", "erin", "--group", "newcomers", "--json"],
                capture_output=True,
                text=True,
                env=env,
                check=True,
            ).stdout
        )
        session = form_login(first.url, "erin", added["password"])
        assert session.get("/hub/api/user").json()["name"] == "erin"
        demo_before = first.datadir.demo_users.read_text()
        note = first.datadir.home("erin") / "notes.txt"
        note.parent.mkdir(parents=True, exist_ok=True)
        note.write_text("kept")
        secrets_before = {p.name: p.read_text() for p in first.datadir.secrets.iterdir()}
        # a run in progress when the platform stops: Ctrl-C stops its worker too
        api = Api(first, "scientist")
        job = api.create_job(NOTEBOOKS / "sleeps.ipynb", name="interrupted", retries=1)
        run = api.start(job, {"seconds": 300})
        while api.client.get(f"runs/{run['id']}").json()["state"] != "running":
            time.sleep(0.2)

    with running_platform(tmp_path / "second", data) as second:
        assert second.datadir.demo_users.read_text() == demo_before
        assert {p.name: p.read_text() for p in second.datadir.secrets.iterdir()} == secrets_before
        # the browser session from before the restart is still valid (same cookie secret)
        session.base_url = second.url
        r = session.get("/hub/api/user")
        assert r.status_code == 200 and r.json()["name"] == "erin"
        assert "newcomers" in r.json()["groups"]
        # the password still works, and so do the demo accounts
        form_login(second.url, "erin", added["password"])
        form_login(second.url, "analyst", second.password("analyst"))
        assert (second.datadir.home("erin") / "notes.txt").read_text() == "kept"
        admin = httpx.get(
            second.url + "/hub/api/groups/newcomers",
            headers={"Authorization": f"token {second.admin_token}"},
            timeout=30,
        ).json()
        assert set(admin["users"]) == {"newcomer", "erin"}
        # the interrupted run ended as lost, and is retried per the job's policy
        api = Api(second, "scientist")
        interrupted = api.client.get(f"runs/{run['id']}").json()
        assert interrupted["state"] == "lost"
        assert interrupted["message"] == "the scheduler was stopped while the run was going"
        runs = api.client.get(f"jobs/{job['id']}/runs").json()["runs"]
        assert any(r["retry_of"] == run["id"] and r["attempt"] == 2 for r in runs)
        for r in runs:
            if r["state"] in ("queued", "starting", "running"):
                api.client.post(f"runs/{r['id']}/cancel")
