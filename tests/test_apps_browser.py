"""Apps as people use them, in headless Chromium against the real platform.

A data scientist publishes (through the API here; the JupyterLab command is
test_lab_publish.py), a stakeholder signs in and opens the link: no consent page, no source,
the slider works. Shares are enforced by the hub (403 for others, login for anonymous),
revocation locks out at once, rollback serves the old version, a stopped app wakes on open,
views are counted, a failing notebook shows viewers a clean page and its owner the error, and
JupyterLab servers still ask for consent.
"""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest
from test_apps import NOTEBOOKS, b64, publish, wait_for

from conftest import ROOT, Platform, hub_token

APP_TIMEOUT = 120_000
"""Milliseconds a page waits for an app server to start and render (2 cores, shared)."""


def login(browser, platform: Platform, name: str):  # type: ignore[no-untyped-def]
    """A fresh browser context signed in as `name` through the login form."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(platform.url + "/hub/login")
    page.fill("#username_input", name)
    page.fill("#password_input", platform.password(name))
    page.click("#login_submit")
    page.wait_for_load_state()
    return page


@pytest.fixture(scope="module")
def api(platform: Platform):
    """Apps API clients of the scientist (owner) and the admin."""
    clients = {
        name: httpx.Client(
            base_url=platform.url + "/services/apps/api/",
            headers={"Authorization": f"token {hub_token(platform, name)}"},
            timeout=120,
        )
        for name in ("scientist", "admin")
    }
    yield clients
    for client in clients.values():
        client.close()


def body_text(page) -> str:  # type: ignore[no-untyped-def]
    """The page's text now, or "" while it is between two pages."""
    try:
        return page.inner_text("body", timeout=5_000)
    except Exception:
        return ""


def result_text(page) -> str:  # type: ignore[no-untyped-def]
    """The widget's output, once the app has rendered it."""
    page.wait_for_selector("b.result", timeout=APP_TIMEOUT)
    return page.inner_text("b.result")


def open_app(page, platform: Platform, slug: str):  # type: ignore[no-untyped-def]
    """Open the app's stable link and wait for its page (through the wake page if needed)."""
    page.goto(platform.url + f"/services/apps/a/{slug}", wait_until="commit")
    page.wait_for_url(re.compile(rf".*/user/scientist/app-{slug}/.*"), timeout=APP_TIMEOUT)
    return result_text(page)


def test_stakeholder_opens_the_app_moves_the_slider(api, browser, platform: Platform) -> None:
    r = publish(
        api["scientist"],
        slug="squares",
        description="Squares of n, for the stakeholders",
        share={"groups": ["stakeholders"]},
    )
    assert r.status_code == 201, r.text
    page = login(browser, platform, "stakeholder")
    # everyone lands on the portal's home, which lists the apps shared with them
    page.wait_for_url("**/services/portal/", timeout=30_000)
    page.wait_for_selector("#dsml-apps .dsml-home-app[data-slug=squares]")
    page.click("[data-dsml-nav=apps]")
    page.wait_for_url("**/services/apps/", timeout=30_000)
    # the gallery lists it; the stakeholder clicks it as a person does
    page.click("#dsml-shared .dsml-app[data-slug=squares] a.dsml-open")
    page.wait_for_url(re.compile(r".*/user/scientist/app-squares/.*"), timeout=APP_TIMEOUT)
    assert result_text(page) == "result: 9"
    body = page.content()
    assert "Authorize access" not in body
    assert "SECRET_SOURCE_MARKER" not in body  # sources stripped
    handle = page.locator(".noUi-handle").first
    handle.focus()
    handle.press("ArrowRight")
    page.wait_for_function(
        "document.querySelector('b.result').textContent === 'result: 16'", timeout=30_000
    )
    # what a viewer may not reach under the app's URL
    base = page.url.split("/app-squares/")[0] + "/app-squares/"
    for path in ("api/kernels", "api/contents", "api/sessions", "terminals", "tree", "lab"):
        response = page.request.get(base + path, max_redirects=0)
        assert response.status in (403, 404, 405), (path, response.status)
    page.context.close()


def test_others_are_refused_and_revocation_is_immediate(api, browser, platform: Platform) -> None:
    sci = api["scientist"]
    r = publish(sci, slug="for-analyst", share={"users": ["analyst"]})
    assert r.status_code == 201, r.text
    analyst = login(browser, platform, "analyst")
    assert open_app(analyst, platform, "for-analyst") == "result: 9"
    app_url = analyst.url
    # a user it is not shared with: the hub refuses them at the app server
    newcomer = login(browser, platform, "newcomer")
    response = newcomer.goto(app_url)
    assert response.status == 403
    assert "SECRET_SOURCE_MARKER" not in newcomer.content()
    newcomer.context.close()
    # an anonymous visitor is sent to sign in
    anonymous = browser.new_context().new_page()
    anonymous.goto(app_url)
    assert "/hub/login" in anonymous.url
    anonymous.context.close()
    # revoked: the analyst is out on the next request, despite caches
    assert sci.delete("apps/for-analyst/shares/users/analyst").status_code == 200
    response = analyst.goto(app_url)
    assert response.status == 403
    analyst.context.close()


def test_rollback_serves_the_old_version(api, browser, platform: Platform) -> None:
    sci = api["scientist"]
    share = {"users": ["stakeholder"]}
    v1 = publish(sci, slug="versions", files={"data/factor.txt": b64(b"1")}, share=share)
    assert v1.status_code == 201, v1.text
    v2 = publish(sci, slug="versions", files={"data/factor.txt": b64(b"10")})
    assert v2.status_code == 201 and v2.json()["version"]["version"] == 2
    page = login(browser, platform, "stakeholder")
    assert open_app(page, platform, "versions") == "result: 90"
    assert sci.post("apps/versions/rollback", json={"version": 1}).status_code == 200
    assert open_app(page, platform, "versions") == "result: 9"
    versions = [v["version"] for v in sci.get("apps/versions/versions").json()["versions"]]
    assert versions == [2, 1]
    page.context.close()


def test_a_stopped_app_wakes_when_a_viewer_opens_it(api, browser, platform: Platform) -> None:
    sci = api["scientist"]
    r = publish(sci, slug="sleepy", share={"users": ["stakeholder"]})
    assert r.status_code == 201, r.text
    assert sci.post("apps/sleepy/stop").status_code == 200
    wait_for(
        lambda: sci.get("apps/sleepy/status").json()["state"] == "stopped",
        what="app stopped",
    )
    page = login(browser, platform, "stakeholder")
    response = page.goto(platform.url + "/services/apps/a/sleepy", wait_until="commit")
    # the waiting page with live progress, then the app by itself
    assert 'id="dsml-wake"' in response.text()
    page.wait_for_url(re.compile(r".*/user/scientist/app-sleepy/.*"), timeout=APP_TIMEOUT)
    assert result_text(page) == "result: 9"
    page.context.close()


def test_views_and_unique_viewers_are_counted(api, browser, platform: Platform) -> None:
    sci = api["scientist"]
    r = publish(sci, slug="counted-visits", share={"users": ["stakeholder", "analyst"]})
    assert r.status_code == 201, r.text
    visits = {"stakeholder": 2, "analyst": 1}
    for name, count in visits.items():
        page = login(browser, platform, name)
        for _ in range(count):
            open_app(page, platform, "counted-visits")
        page.context.close()
    usage = wait_for(
        lambda: (u := sci.get("apps/counted-visits/usage").json())["views"] >= 3 and u,
        what="three views reported",
    )
    time.sleep(3)  # nothing more arrives late
    usage = sci.get("apps/counted-visits/usage").json()
    assert (usage["views"], usage["unique_viewers"]) == (3, 2)
    assert usage["render_seconds_p50"] > 0
    metrics = httpx.get(
        platform.url + "/services/apps/metrics",
        headers={"Authorization": sci.headers["Authorization"]},
    ).text
    assert 'dsml_app_views_total{app="counted-visits",version="1"} 3.0' in metrics
    assert 'dsml_app_unique_viewers{app="counted-visits"} 2.0' in metrics


def test_a_failing_notebook_shows_a_clean_page_and_tells_the_owner(
    api, browser, platform: Platform
) -> None:
    sci = api["scientist"]
    nb = json.loads((NOTEBOOKS / "app_raises.ipynb").read_text())
    r = publish(sci, slug="broken", notebook=nb, share={"users": ["stakeholder"]})
    assert r.status_code == 201, r.text
    page = login(browser, platform, "stakeholder")
    page.goto(platform.url + "/services/apps/a/broken", wait_until="commit")
    page.wait_for_load_state()
    wait_for(
        lambda: "failed" in body_text(page) or "could not" in body_text(page),
        seconds=120,
        what="an error page",
    )
    text = page.inner_text("body")
    assert "Traceback" not in text and "/srv/secret" not in text and "ValueError" not in text
    page.context.close()
    log = wait_for(
        lambda: (found := sci.get("apps/broken/logs").json())["error"] and found,
        what="the error reported to the owner",
    )
    assert "ValueError" in log["error"] and "is missing" in log["error"]


def test_the_declared_app_is_published_at_start(api, browser, platform: Platform) -> None:
    found = wait_for(
        lambda: (r := api["admin"].get("apps/declared-squares")).status_code == 200 and r.json(),
        what="the declared app",
    )
    assert found["owner"] == "scientist" and found["managed"] is True
    assert found["shared"]["everyone"] is True
    # shared with everyone: a newcomer opens it
    page = login(browser, platform, "newcomer")
    page.goto(platform.url + "/services/apps/a/declared-squares", wait_until="commit")
    page.wait_for_url(re.compile(r".*/user/scientist/app-declared-squares/.*"), timeout=APP_TIMEOUT)
    assert result_text(page) == "result: 9"
    page.context.close()


def test_jupyterlab_servers_still_ask_for_consent(api, browser, platform: Platform) -> None:
    # users do not share their JupyterLab servers on this platform; a hub admin can
    token = hub_token(platform, "admin")
    headers = {"Authorization": f"token {token}"}
    hub = httpx.Client(base_url=platform.url + "/hub/api/", headers=headers, timeout=120)
    hub.post("users/scientist/server")
    wait_for(
        lambda: hub.get("users/scientist").json()["servers"].get("", {}).get("ready"),
        seconds=120,
        what="the scientist's JupyterLab",
    )
    r = hub.post("shares/scientist/", json={"user": "stakeholder"})
    assert r.status_code == 200, r.text
    try:
        page = login(browser, platform, "stakeholder")
        page.goto(platform.url + "/user/scientist/lab")
        page.wait_for_load_state()
        assert "Authorize access" in page.inner_text("body")
        page.context.close()
    finally:
        hub.patch("shares/scientist/", json={"user": "stakeholder"})
        hub.close()


CORPUS = ROOT / ".." / "shared" / "corpus" / "voila"
"""Notebooks from Voila's own test suite (../shared/corpus/voila)."""


@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus/voila is not beside the repo")
@pytest.mark.parametrize(
    "name, files, shows, hides",
    [
        ("print.ipynb", [], ["Hi Voilà!"], ["print('Hi '"]),
        ("cwd.ipynb", ["file.txt"], ["Check for the cwd"], ["open('./file.txt')"]),
        ("output.ipynb", [], ["in output", "hello world"], ["output1 = widgets"]),
    ],
)
def test_voila_corpus_notebooks_render(
    api, browser, platform: Platform, name: str, files: list[str], shows, hides
) -> None:
    nb = json.loads((CORPUS / name).read_text())
    slug = "corpus-" + name.split(".")[0].replace("_", "-")
    r = publish(
        api["scientist"],
        slug=slug,
        notebook=nb,
        environment="datascience",
        files={f: b64((CORPUS / f).read_bytes()) for f in files},
        share={"users": ["stakeholder"]},
    )
    assert r.status_code == 201, r.text
    page = login(browser, platform, "stakeholder")
    page.goto(platform.url + f"/services/apps/a/{slug}", wait_until="commit")
    page.wait_for_url(re.compile(rf".*/user/scientist/app-{slug}/.*"), timeout=APP_TIMEOUT)
    for text in shows:
        page.wait_for_selector(f"text={text}", timeout=APP_TIMEOUT)
    content = page.content()
    for text in hides:
        assert text not in content
    if name == "output.ipynb":
        # opened again at once, the page finds the pool's kernel still running the notebook:
        # Voila alone then left about one page in six hanging on an Output cell
        for _ in range(6):
            page.reload(wait_until="commit", timeout=APP_TIMEOUT)
            page.wait_for_selector("text=hello world", timeout=APP_TIMEOUT)
    page.context.close()


@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus/voila is not beside the repo")
def test_a_failing_corpus_notebook_is_clean_for_viewers(api, browser, platform: Platform) -> None:
    nb = json.loads((CORPUS / "syntax_error.ipynb").read_text())
    sci = api["scientist"]
    r = publish(
        sci,
        slug="corpus-syntax-error",
        notebook=nb,
        environment="datascience",
        share={"users": ["stakeholder"]},
    )
    assert r.status_code == 201, r.text
    page = login(browser, platform, "stakeholder")
    page.goto(platform.url + "/services/apps/a/corpus-syntax-error", wait_until="commit")
    wait_for(
        lambda: "failed" in body_text(page) or "could not" in body_text(page),
        seconds=120,
        what="an error page",
    )
    text = page.inner_text("body")
    assert "should not be executed" not in text
    assert "SyntaxError" not in text and "Traceback" not in text
    page.context.close()
    log = wait_for(
        lambda: (found := sci.get("apps/corpus-syntax-error/logs").json())["error"] and found,
        what="the error reported to the owner",
    )
    assert "SyntaxError" in log["error"]


def test_always_on_apps_stay_active_for_the_culler(api, platform: Platform) -> None:
    sci, admin = api["scientist"], api["admin"]
    r = publish(sci, slug="always-on", always_on=True)
    assert r.status_code == 201, r.text
    wait_for(
        lambda: sci.get("apps/always-on/status").json()["state"] == "running",
        seconds=120,
        what="the always-on app running",
    )
    hub = httpx.Client(
        base_url=platform.url + "/hub/api/",
        headers={"Authorization": f"token {hub_token(platform, 'admin')}"},
        timeout=30,
    )

    def last_activity() -> str:
        return hub.get("users/scientist").json()["servers"]["app-always-on"]["last_activity"]

    before = last_activity()
    # nobody visits; the service reports it active every maintenance round (10 s)
    later = wait_for(lambda: (now := last_activity()) > before and now, seconds=60, what="activity")
    assert later > before
    # and a stopped always-on app is started again
    assert sci.post("apps/always-on/stop").status_code == 200
    wait_for(
        lambda: sci.get("apps/always-on/status").json()["state"] == "running",
        seconds=120,
        what="the always-on app started again",
    )
    hub.close()
    assert admin.patch("apps/always-on", json={"always_on": False}).status_code == 200


def test_the_owner_page_rolls_back_and_shares_by_clicking(api, browser, platform: Platform) -> None:
    sci = api["scientist"]
    assert publish(sci, slug="owner-page", files={"data/factor.txt": b64(b"1")}).status_code == 201
    assert publish(sci, slug="owner-page", files={"data/factor.txt": b64(b"5")}).status_code == 201
    page = login(browser, platform, "scientist")
    page.goto(platform.url + "/services/apps/manage/owner-page")
    assert page.locator("#dsml-versions tr[data-version]").count() == 2
    # serve version 1 again, as the owner does it: the button on its row
    page.click("#dsml-versions tr[data-version='1'] button.dsml-rollback")
    page.wait_for_selector("#dsml-versions tr[data-version='1'] .badge", timeout=60_000)
    assert sci.get("apps/owner-page").json()["current_version"] == 1
    # share with a group: pick it, type its name, press Share
    page.select_option("#dsml-share-kind", "groups")
    page.fill("#dsml-share-name", "stakeholders")
    page.click("#dsml-share-form button[type=submit]")
    page.wait_for_selector("#dsml-shares li:has-text('group stakeholders')", timeout=30_000)
    # a group that does not exist: the page says so, nothing is shared
    page.fill("#dsml-share-name", "no-such-group")
    page.click("#dsml-share-form button[type=submit]")
    page.wait_for_selector('#dsml-result:has-text("no such group")', timeout=30_000)
    assert sci.get("apps/owner-page/shares").json()["groups"] == ["stakeholders"]
    # remove it again with its button
    page.click("#dsml-shares li:has-text('group stakeholders') button.dsml-unshare")
    page.wait_for_selector("#dsml-shares li:has-text('nobody yet')", timeout=30_000)
    page.context.close()


USAGE_PROBE = """
import json, os, urllib.error, urllib.request
base = os.environ.get("DSML_HUB_URL", "").rstrip("/")
def call(method, path, body=None):
    request = urllib.request.Request(
        f"{base}/services/portal/api/{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": "token " + os.environ.get("DSML_USAGE_TOKEN", ""),
                 "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code
owner_token = "present" if os.environ.get("JUPYTERHUB_API_TOKEN") else "absent"
record = {"notebook": "01-welcome-to-jupyterlab.ipynb", "exercise": "01.1", "passed": True}
print(f"owner-token={owner_token}")
print(f"usage={call('GET', 'usage')}")
print(f"history={call('GET', 'usage/history?days=7')}")
print(f"per-user={call('GET', 'usage/users')}")
print(f"learners={call('GET', 'training/learners')}")
print(f"record={call('POST', 'training/progress', record)}")
"""


def test_an_app_kernel_reads_usage_totals_and_nothing_else(
    api, browser, platform: Platform
) -> None:
    """A leaders' app shows live usage figures: its kernel holds the usage-reader token, which
    reads the totals any signed-in user may read, and no token of the owner."""
    nb = {
        "cells": [
            {"cell_type": "code", "metadata": {}, "source": USAGE_PROBE, "outputs": [],
             "execution_count": None},
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }  # fmt: skip
    r = publish(
        api["scientist"],
        slug="usage-probe",
        notebook=nb,
        environment="python-minimal",
        share={"users": ["stakeholder"]},
    )
    assert r.status_code == 201, r.text
    page = login(browser, platform, "stakeholder")
    page.goto(platform.url + "/services/apps/a/usage-probe", wait_until="commit")
    page.wait_for_selector("text=record=", timeout=APP_TIMEOUT)
    text = page.inner_text("body")
    assert "owner-token=absent" in text
    assert "usage=200" in text and "history=200" in text
    # nothing per person, nothing written
    assert "per-user=403" in text and "learners=403" in text and "record=403" in text
    page.context.close()
