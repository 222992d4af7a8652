"""The running platform, used as people use it: login form, JupyterLab, kernels, refusals."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest
import websocket

from dsml.client import HEALTH_PATH

from conftest import Platform, hub_token


def login(browser, platform: Platform, name: str, password: str | None = None):
    """Log in through the real login form; return the page (and its context) afterwards."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(platform.url + "/hub/login")
    page.fill("#username_input", name)
    page.fill("#password_input", password if password is not None else platform.password(name))
    page.click("#login_submit")
    page.wait_for_load_state()
    return page


def request_token(page, platform: Platform) -> str:
    """Ask for an API token on the hub's token page, as a person would."""
    page.goto(platform.url + "/hub/token")
    page.fill("#token-note", "test")
    page.click("#request-token-form button[type=submit]")
    page.wait_for_selector("#token-result:not(:empty)")
    return page.inner_text("#token-result").strip()


def run_code(base: str, token: str, kernel_name: str, code: str) -> str:
    """Start a kernel on a user server, execute `code` over the websocket, return text/plain."""
    headers = {"Authorization": f"token {token}"}
    r = httpx.post(f"{base}/api/kernels", json={"name": kernel_name}, headers=headers, timeout=60)
    r.raise_for_status()
    kernel_id = r.json()["id"]
    ws_url = base.replace("http://", "ws://") + f"/api/kernels/{kernel_id}/channels"
    ws = websocket.create_connection(ws_url, header=[f"Authorization: token {token}"], timeout=60)
    try:
        msg_id = uuid.uuid4().hex
        ws.send(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id,
                        "msg_type": "execute_request",
                        "username": "test",
                        "session": uuid.uuid4().hex,
                        "version": "5.3",
                    },
                    "parent_header": {},
                    "metadata": {},
                    "content": {"code": code, "silent": False, "store_history": False},
                    "channel": "shell",
                    "buffers": [],
                }
            )
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            msg = json.loads(ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "execute_result":
                return msg["content"]["data"]["text/plain"]
            if msg["msg_type"] == "error":
                raise AssertionError(f"{msg['content']['ename']}: {msg['content']['evalue']}")
        raise AssertionError("no execute_result within 60 s")
    finally:
        ws.close()
        httpx.delete(f"{base}/api/kernels/{kernel_id}", headers=headers, timeout=30)


def test_health_endpoint_reports_every_service(platform: Platform) -> None:
    admin = hub_token(platform, "admin")
    r = httpx.get(
        platform.url + HEALTH_PATH, headers={"Authorization": f"token {admin}"}, timeout=10
    )
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert body["checks"]["service:idle-culler"] == "ok"
    assert body["checks"]["service:scheduler"] == "ok"
    assert body["checks"]["proxy"] == "ok"
    assert body["checks"]["database"] == "ok"


def test_demo_users_file_is_private_and_complete(platform: Platform) -> None:
    mode = platform.datadir.demo_users.stat().st_mode & 0o777
    assert mode == 0o600
    groups = {u["group"] for u in platform.users.values()}
    assert groups == {"platform-admins", "analysts", "data-scientists", "stakeholders", "newcomers"}


@pytest.fixture(scope="module")
def analyst(browser, platform: Platform):
    """The demo analyst, logged in through the form, with JupyterLab started."""
    page = login(browser, platform, "analyst")
    # everyone lands on the portal's home; JupyterLab is a click away (the hub spawns it)
    page.wait_for_url("**/services/portal/", timeout=30_000)
    page.click("#dsml-open-lab")
    page.wait_for_url("**/user/analyst/lab**", timeout=90_000)
    page.wait_for_selector("#jp-main-dock-panel", timeout=90_000)
    token = request_token(page, platform)
    yield {"page": page, "token": token, "base": platform.url + "/user/analyst"}
    page.context.close()


def test_analyst_gets_curated_kernels_only(analyst) -> None:
    r = httpx.get(
        analyst["base"] + "/api/kernelspecs",
        headers={"Authorization": f"token {analyst['token']}"},
        timeout=30,
    )
    r.raise_for_status()
    body = r.json()
    assert set(body["kernelspecs"]) == {"dsml-datascience", "dsml-python-minimal"}
    assert body["default"] == "dsml-datascience"


def test_analyst_runs_code_in_the_datascience_kernel(analyst) -> None:
    assert run_code(analyst["base"], analyst["token"], "dsml-datascience", "1+1") == "2"
    version = run_code(
        analyst["base"], analyst["token"], "dsml-datascience", "import sklearn; sklearn.__version__"
    )
    assert (
        version.strip("'")
        == __import__("dsml.environments", fromlist=["x"])
        .find_environment("datascience")
        .packages["scikit-learn"]
    )


def test_analyst_finds_training_notebooks_in_their_home(analyst, platform: Platform) -> None:
    headers = {"Authorization": f"token {analyst['token']}"}
    r = httpx.get(analyst["base"] + "/api/contents/training", headers=headers, timeout=30)
    r.raise_for_status()
    names = {item["name"] for item in r.json()["content"]}
    assert "01-welcome-to-jupyterlab.ipynb" in names
    r = httpx.get(analyst["base"] + "/api/contents/shared_notebooks", headers=headers, timeout=30)
    assert "sales-report.ipynb" in {item["name"] for item in r.json()["content"]}
    assert (platform.datadir.home("analyst") / "training" / "selfcheck.py").exists()


def test_a_user_cannot_read_another_users_files(analyst, browser, platform: Platform) -> None:
    # the scientist's server runs too, so the refusal is about rights, not a missing server
    scientist = login(browser, platform, "scientist")
    scientist.goto(platform.url + "/hub/spawn")
    scientist.wait_for_url("**/user/scientist/lab**", timeout=90_000)
    scientist.context.close()
    headers = {"Authorization": f"token {analyst['token']}"}
    r = httpx.get(
        platform.url + "/user/scientist/api/contents/training",
        headers=headers,
        timeout=30,
        follow_redirects=False,
    )
    assert r.status_code == 403
    r = httpx.get(platform.url + "/hub/api/users/scientist", headers=headers, timeout=30)
    assert r.status_code == 404
    # in the browser, the analyst's session is refused too
    page = analyst["page"]
    response = page.goto(platform.url + "/user/scientist/api/contents/training")
    assert response.status == 403


def test_stakeholder_cannot_start_jupyterlab(browser, platform: Platform) -> None:
    page = login(browser, platform, "stakeholder")
    # stakeholders land on their home, with the apps shared with them and no way to a server
    page.wait_for_url("**/services/portal/", timeout=30_000)
    assert page.locator("#dsml-apps").is_visible()
    assert page.locator("#dsml-open-lab").count() == 0
    response = page.goto(platform.url + "/hub/spawn")
    assert response.status == 403
    text = page.inner_text("body")
    assert "may not start a JupyterLab server" in text
    token = request_token(page, platform)
    r = httpx.post(
        platform.url + "/hub/api/users/stakeholder/server",
        headers={"Authorization": f"token {token}"},
        timeout=30,
    )
    assert r.status_code == 403
    page.context.close()


def test_wrong_password_is_refused(browser, platform: Platform) -> None:
    page = login(browser, platform, "analyst", password="not-the-password")
    assert "/hub/login" in page.url
    assert "Invalid username or password." in page.inner_text("body")
    cookies = {c["name"] for c in page.context.cookies()}
    assert "jupyterhub-hub-login" not in cookies
    # the refused browser cannot reach the hub home either
    page.goto(platform.url + "/hub/home")
    assert "/hub/login" in page.url
    page.context.close()


def test_users_cli_adds_and_lists(platform: Platform) -> None:
    import subprocess

    from conftest import DSML

    env = {
        **__import__("os").environ,
        "DSML_HUB_URL": platform.url,
        "DSML_ADMIN_TOKEN": platform.admin_token,
    }
    out = subprocess.run(
        DSML + ["users", "add", "dana", "--group", "data-scientists", "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    record = json.loads(out)
    assert record["group"] == "data-scientists" and len(record["password"]) >= 10
    listing = json.loads(
        subprocess.run(
            DSML + ["users", "list", "--json"], capture_output=True, text=True, env=env, check=True
        ).stdout
    )
    assert {"name": "dana", "groups": ["data-scientists"]}.items() <= {
        k: v for k, v in next(u for u in listing if u["name"] == "dana").items()
    }.items()
    again = subprocess.run(
        DSML + ["users", "add", "dana", "--group", "analysts"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert again.returncode != 0 and "exists already" in again.stderr
    bad = subprocess.run(
        DSML + ["users", "add", "Bad Name", "--group", "analysts"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert bad.returncode == 2 and "is not allowed" in bad.stderr
