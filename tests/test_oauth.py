"""Single sign-on: the platform works whatever the authenticator.

A second, plain JupyterHub plays the company's identity provider (JupyterHub speaks OAuth 2 to
its services; the platform is registered there as one). Our platform runs with
`auth.kind: oauth` and oauthenticator's GenericOAuthenticator pointed at it. A data scientist
signs in through Chromium the way a person does, then uses the platform's own pages and APIs
(health, environments catalog, package requests, a run in the scheduler), which must not
depend on the password authenticator.

The identity provider is opened by the browser as `localhost` and the platform as `127.0.0.1`:
both are JupyterHubs whose cookies have the same names, and browsers keep cookies per host name
(not per port), so two host names keep the two sessions apart, as two domains do in a company.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import nbformat
import pytest
from test_platform import request_token

from conftest import DSML, ROOT, Platform, free_port, running_platform

PORTAL_HEALTH = "/services/portal/api/health"
"""The platform's health, served by the portal service (not by the authenticator)."""
PORTAL_ENVIRONMENTS = "/services/portal/environments"
"""The environments catalog page of the portal service."""
PORTAL_ENV_REQUESTS = "/services/portal/api/env-requests"
"""Package requests: file one (POST), list mine (GET)."""
SCHEDULER_API = "/services/scheduler/api/"
"""The scheduler service's REST API."""

IDP_USERS = ("scientist", "intruder")
"""People the identity provider knows; only `scientist` has an account on the platform."""
SSO_CLIENT_ID = "service-dsml-platform"
"""The platform's OAuth client id at the identity provider (service client ids start so)."""
LOGIN_SERVICE = "Company SSO"
"""The name on the platform's sign-in button."""
FINAL = ("succeeded", "failed", "timed_out", "cancelled", "lost", "skipped")


@dataclass
class IdentityProvider:
    """A running JupyterHub acting as OAuth 2 identity provider."""

    browser_url: str  # what people's browsers open (host name `localhost`)
    server_url: str  # what the platform's hub calls (127.0.0.1)
    client_secret: str
    password: str  # every IdP user's password (SharedPasswordAuthenticator)
    log: Path


def _idp_config(port: int, platform_port: int, client_secret: str, password: str) -> str:
    """The identity provider's jupyterhub_config.py: plain JupyterHub, one OAuth client."""
    chp = ROOT / "node_modules" / ".bin" / "configurable-http-proxy"
    service = {
        "name": "dsml-platform",
        "oauth_client_id": SSO_CLIENT_ID,
        "api_token": client_secret,
        "oauth_redirect_uri": f"http://127.0.0.1:{platform_port}/hub/oauth_callback",
        "oauth_no_confirm": True,
        # what the platform may read with the token it gets: who signed in, and their groups
        "oauth_client_allowed_scopes": ["read:users:name!user", "read:users:groups!user"],
    }
    return "\n".join(
        [
            "c = get_config()  # noqa: F821",
            "c.JupyterHub.ip = '127.0.0.1'",
            f"c.JupyterHub.port = {port}",
            "c.JupyterHub.hub_ip = '127.0.0.1'",
            f"c.JupyterHub.hub_port = {free_port()}",
            f"c.ConfigurableHTTPProxy.api_url = 'http://127.0.0.1:{free_port()}'",
            f"c.ConfigurableHTTPProxy.auth_token = {secrets.token_hex(16)!r}",
            f"c.ConfigurableHTTPProxy.command = [{str(chp)!r}]",
            "c.JupyterHub.authenticator_class = 'shared-password'",
            f"c.SharedPasswordAuthenticator.user_password = {password!r}",
            f"c.Authenticator.allowed_users = {set(IDP_USERS)!r}",
            f"c.JupyterHub.services = [{service!r}]",
            # signing in to a service through a hub takes the right to access that service
            "c.JupyterHub.load_roles = [{'name': 'user', 'scopes': "
            "['self', 'access:services!service=dsml-platform']}]",
            "",
        ]
    )


@pytest.fixture(scope="module")
def platform_port() -> int:
    """The platform's port, known before the IdP starts (its OAuth redirect URI names it)."""
    return free_port()


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory, platform_port: int) -> Iterator[IdentityProvider]:
    """A second, plain JupyterHub 5.5 on 127.0.0.1 in a folder of its own, as identity provider."""
    folder = tmp_path_factory.mktemp("idp")
    port = free_port()
    secret, password = secrets.token_hex(32), secrets.token_urlsafe(12)
    config = folder / "jupyterhub_config.py"
    config.write_text(_idp_config(port, platform_port, secret, password))
    log = folder / "idp.log"
    jupyterhub = Path(sys.executable).parent / "jupyterhub"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [str(jupyterhub), "-f", str(config)],
            cwd=folder,  # its database, cookie secret and proxy pid file land here
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the IdP exited {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(server_url + "/hub/api", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the IdP did not answer in 60 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield IdentityProvider(
            browser_url=f"http://localhost:{port}",
            server_url=server_url,
            client_secret=secret,
            password=password,
            log=log,
        )
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the hub stops its proxy on the way out
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def sso_settings(idp: IdentityProvider, platform_port: int) -> dict[str, Any]:
    """The platform's `auth:` settings for single sign-on through `idp`."""
    return {
        "auth": {
            "kind": "oauth",
            "oauth_class": "oauthenticator.generic.GenericOAuthenticator",
            "oauth_config": {
                "client_id": SSO_CLIENT_ID,
                "client_secret": idp.client_secret,
                "oauth_callback_url": f"http://127.0.0.1:{platform_port}/hub/oauth_callback",
                # the browser is sent to the authorize URL; the hub itself calls the other two
                "authorize_url": f"{idp.browser_url}/hub/api/oauth2/authorize",
                "token_url": f"{idp.server_url}/hub/api/oauth2/token",
                "userdata_url": f"{idp.server_url}/hub/api/user",
                "scope": ["read:users:name!user", "read:users:groups!user"],
                "username_claim": "name",
                "login_service": LOGIN_SERVICE,
                # a company's rule: the accounts the platform admin created, and no one else
                "allow_existing_users": True,
            },
        }
    }


@pytest.fixture(scope="module")
def sso_platform(
    idp: IdentityProvider,
    platform_port: int,
    env_datadir: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Platform]:
    """Our platform, `dsml up --demo` with `auth.kind: oauth`; its own, not the session's."""
    base = tmp_path_factory.mktemp("sso-platform")
    with running_platform(
        base, base / "data", port=platform_port, settings=sso_settings(idp, platform_port)
    ) as platform:
        yield platform


def sign_in(browser: Any, platform: Platform, idp: IdentityProvider, name: str) -> Any:
    """Sign `name` in as a person does: the platform's SSO button, then the IdP's form."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(platform.url + "/")
    assert "/hub/login" in page.url, page.url
    page.click(f"a:has-text('Sign in with {LOGIN_SERVICE}')")
    page.wait_for_url(f"{idp.browser_url}/hub/login**")
    page.fill("#username_input", name)
    page.fill("#password_input", idp.password)
    page.click("#login_submit")
    page.wait_for_load_state()
    return page


@dataclass
class Session:
    """A person signed in to the platform in Chromium."""

    page: Any
    landed: str  # where the sign-in took them
    token: str  # an API token made on the hub's token page


@pytest.fixture(scope="module")
def scientist(browser: Any, sso_platform: Platform, idp: IdentityProvider) -> Iterator[Session]:
    """The data scientist signed in through the IdP, JupyterLab open, with an API token."""
    page = sign_in(browser, sso_platform, idp, "scientist")
    try:
        page.wait_for_url(f"{sso_platform.url}/**", timeout=15_000)
    except Exception:  # say where the browser stayed instead
        raise AssertionError(f"stuck at {page.url}: {page.inner_text('body')[:500]}") from None
    # everyone lands on the portal's home; JupyterLab is one click away
    page.wait_for_url(f"{sso_platform.url}/services/portal/", timeout=30_000)
    landed = page.url
    page.click("#dsml-open-lab")
    page.wait_for_url(f"{sso_platform.url}/user/scientist/lab**", timeout=90_000)
    page.wait_for_selector("#jp-main-dock-panel", timeout=90_000)
    yield Session(page=page, landed=landed, token=request_token(page, sso_platform))
    page.context.close()


def test_demo_accounts_and_new_users_have_no_passwords(sso_platform: Platform) -> None:
    for name, account in sso_platform.users.items():
        assert account["password"] is None, name
        assert "identity provider" in account["sign_in"], name

    def users(*args: str) -> subprocess.CompletedProcess:
        settings = sso_platform.log.parent / "settings.yaml"
        location = ["--settings", str(settings), "--hub-url", sso_platform.url]
        env = {**os.environ, "DSML_ADMIN_TOKEN": sso_platform.admin_token}
        return subprocess.run(
            DSML + ["users", *args, *location], capture_output=True, text=True, env=env
        )

    added = users("add", "newhire", "--group", "analysts", "--json")
    assert added.returncode == 0, added.stderr
    record = json.loads(added.stdout)
    assert record["password"] is None and "identity provider" in record["sign_in"]
    hub = httpx.get(
        sso_platform.url + "/hub/api/users/newhire",
        headers={"Authorization": f"token {sso_platform.admin_token}"},
        timeout=30,
    ).json()
    assert hub["groups"] == ["analysts"]
    reset = users("reset-password", "scientist")
    assert reset.returncode == 1, reset.stderr
    assert "keeps no passwords" in reset.stderr and "identity provider" in reset.stderr


def test_scientist_signs_in_through_the_identity_provider(
    scientist: Session, sso_platform: Platform
) -> None:
    # the hub sent them to their home page, from where their own JupyterLab loaded
    assert scientist.landed == f"{sso_platform.url}/services/portal/"
    me = httpx.get(
        sso_platform.url + "/hub/api/user",
        headers={"Authorization": f"token {scientist.token}"},
        timeout=30,
    ).json()
    assert me["name"] == "scientist"
    assert me["groups"] == ["data-scientists"]


def test_someone_the_admin_did_not_create_is_refused(
    browser: Any, sso_platform: Platform, idp: IdentityProvider
) -> None:
    page = sign_in(browser, sso_platform, idp, "intruder")
    assert page.url.startswith(sso_platform.url + "/hub/oauth_callback"), page.url
    assert "not currently authorized to use this hub" in page.inner_text("body")
    users = httpx.get(
        sso_platform.url + "/hub/api/users",
        headers={"Authorization": f"token {sso_platform.admin_token}"},
        timeout=30,
    ).json()
    assert "intruder" not in {u["name"] for u in users}
    page.context.close()


def test_portal_pages_work_with_single_sign_on(scientist: Session, sso_platform: Platform) -> None:
    token = {"Authorization": f"token {scientist.token}"}
    health = httpx.get(sso_platform.url + PORTAL_HEALTH, headers=token, timeout=30)
    assert health.status_code == 200, health.text
    response = scientist.page.goto(sso_platform.url + PORTAL_ENVIRONMENTS)
    assert response.status == 200
    scientist.page.wait_for_selector(".dsml-env[data-env='datascience']")
    with httpx.Client(base_url=sso_platform.url, headers=token, timeout=30) as api:
        filed = api.post(
            PORTAL_ENV_REQUESTS,
            json={"package": "polars>=1", "environment": "datascience", "reason": "sso check"},
        )
        assert filed.status_code == 201, filed.text
        mine = api.get(PORTAL_ENV_REQUESTS).json()["requests"]
    assert [(r["user"], r["package"]) for r in mine] == [("scientist", "polars>=1")]


def _tiny_notebook() -> dict[str, Any]:
    """Two cells: a typed parameter and a print of it."""
    params = nbformat.v4.new_code_cell('who: str = "nobody"')
    params.metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(cells=[params, nbformat.v4.new_code_cell('print(f"hi {who}")')])
    nb.metadata["kernelspec"] = {
        "name": "dsml-python-minimal",
        "display_name": "Python 3.11 (python-minimal)",
        "language": "python",
    }
    return json.loads(nbformat.writes(nb))


def test_a_scheduled_run_succeeds(scientist: Session, sso_platform: Platform) -> None:
    with httpx.Client(
        base_url=sso_platform.url + SCHEDULER_API,
        headers={"Authorization": f"token {scientist.token}"},
        timeout=60,
    ) as api:
        created = api.post(
            "jobs",
            json={
                "name": "sso hello",
                "notebook": _tiny_notebook(),
                "notebook_name": "hello.ipynb",
                "environment": "python-minimal",
            },
        )
        assert created.status_code == 201, created.text
        job = created.json()
        started = api.post(f"jobs/{job['id']}/runs", json={"parameters": {"who": "scientist"}})
        assert started.status_code == 201, started.text
        run = started.json()
        deadline = time.monotonic() + 120
        while run["state"] not in FINAL and time.monotonic() < deadline:
            time.sleep(0.25)
            run = api.get(f"runs/{run['id']}").json()
        assert run["state"] == "succeeded", run
        output = api.get(f"runs/{run['id']}/output.ipynb").json()
    printed = [
        "".join(out.get("text", "")) for cell in output["cells"] for out in cell.get("outputs", [])
    ]
    assert "hi scientist\n" in printed
