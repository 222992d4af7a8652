"""Text that users type is shown as text on every page, never run: checked in Chromium.

Markup is stored where the API takes free text (a job's name, an app's title, description
and file names, a package request's reason, a hub token's note) and echoed by error messages
(a run's error, a refused package request); every page that shows them is opened in Chromium,
as their owner and as an admin. No payload may run (`window.__pwned` stays undefined) and the
text must read literally on the page.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from test_platform import login

from conftest import Platform, hub_token

SCRIPT = "<script>window.__pwned=1</script>"
IMG = '<img src=x onerror="window.__pwned=1">'
ATTR = "\"'><svg onload=window.__pwned=1>"
"""Breaks out of a quoted attribute if one is written unescaped."""
PAYLOAD = f"{SCRIPT} {IMG} {ATTR}"
SLUG = "xss-probe"
FILE = f"{IMG}.csv"


def failing_notebook() -> dict[str, Any]:
    """A notebook whose only cell raises an error whose text is markup."""
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {
                "name": "dsml-python-minimal",
                "display_name": "python-minimal",
                "language": "python",
            },
            "language_info": {"name": "python"},
        },
        "cells": [
            {
                "cell_type": "code",
                "id": "c1",
                "metadata": {},
                "outputs": [],
                "execution_count": None,
                "source": f"raise ValueError({PAYLOAD!r})",
            }
        ],
    }


def app_notebook() -> dict[str, Any]:
    """A one-cell app notebook (markdown only: nothing to compute)."""
    nb = failing_notebook()
    nb["cells"] = [{"cell_type": "markdown", "id": "m1", "metadata": {}, "source": "# probe"}]
    return nb


@pytest.fixture(scope="module")
def stored(platform: Platform) -> Iterator[dict[str, Any]]:
    """The payload stored in every free-text field the platform shows, as the scientist."""
    token = hub_token(platform, "scientist")
    headers = {"Authorization": f"token {token}"}
    made: dict[str, Any] = {}
    with httpx.Client(base_url=platform.url, headers=headers, timeout=60) as api:
        r = api.post(
            "/services/scheduler/api/jobs",
            json={
                "name": PAYLOAD,
                "notebook": failing_notebook(),
                "notebook_name": "probe.ipynb",
                "environment": "python-minimal",
                "retries": 0,
            },
        )
        assert r.status_code == 201, r.text
        made["job"] = r.json()
        run = api.post(f"/services/scheduler/api/jobs/{made['job']['id']}/runs", json={})
        assert run.status_code == 201, run.text
        made["run"] = run.json()

        api.delete(f"/services/apps/api/apps/{SLUG}")  # left by an interrupted session
        r = api.post(
            "/services/apps/api/apps",
            json={
                "slug": SLUG,
                "title": PAYLOAD,
                "description": PAYLOAD,
                "notebook": app_notebook(),
                "environment": "python-minimal",
                "files": {FILE: base64.b64encode(b"a,b\n1,2\n").decode()},
            },
        )
        assert r.status_code == 201, r.text

        r = api.post(
            "/services/portal/api/env-requests",
            json={"package": "xss-probe==1.0", "environment": "datascience", "reason": PAYLOAD},
        )
        assert r.status_code in (201, 409), r.text

        r = api.post("/hub/api/users/scientist/tokens", json={"note": PAYLOAD, "expires_in": 600})
        assert r.status_code == 201, r.text
        made["token_id"] = r.json()["id"]

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            made["run"] = api.get(f"/services/scheduler/api/runs/{made['run']['id']}").json()
            if made["run"]["state"] in ("succeeded", "failed", "timed_out", "lost", "cancelled"):
                break
            time.sleep(0.3)
        assert made["run"]["state"] == "failed", made["run"]
        assert "<script>" in json.dumps(made["run"]["error"]), made["run"]["error"]

        yield made

        api.delete(f"/services/apps/api/apps/{SLUG}")
        api.delete(f"/services/scheduler/api/jobs/{made['job']['id']}")
        api.delete(f"/hub/api/users/scientist/tokens/{made['token_id']}")


def inert(page, url: str, *texts: str) -> str:  # type: ignore[no-untyped-def]
    """Open `url`; no payload ran and each of `texts` reads literally on the page."""
    response = page.goto(url)
    assert response is not None and response.status < 400, (url, response and response.status)
    page.wait_for_load_state("load")
    page.wait_for_timeout(300)  # an <img onerror> fires once the image fails to load
    assert page.evaluate("typeof window.__pwned") == "undefined", f"a payload ran on {url}"
    body = page.inner_text("body")
    for text in texts:
        assert text in body, (url, text, body[:2000])
    return body


def test_the_owner_sees_text_not_markup(browser, platform: Platform, stored) -> None:
    page = login(browser, platform, "scientist")
    try:
        run = stored["run"]
        inert(page, platform.url + "/services/scheduler/", PAYLOAD)
        inert(page, platform.url + f"/services/scheduler/runs/{run['id']}", PAYLOAD)
        inert(page, platform.url + "/services/apps/", PAYLOAD)
        inert(page, platform.url + f"/services/apps/manage/{SLUG}", PAYLOAD, FILE)
        inert(page, platform.url + "/services/portal/", PAYLOAD, "xss-probe==1.0")
        inert(page, platform.url + "/services/portal/environments", PAYLOAD)
        inert(page, platform.url + "/services/portal/training")
        inert(page, platform.url + "/hub/token", PAYLOAD)
        inert(page, platform.url + "/hub/home")
        # the app's own link: the waking page names the app while its server starts
        inert(page, platform.url + f"/services/apps/a/{SLUG}")

        # an error message that echoes what was typed: the package request form
        inert(page, platform.url + "/services/portal/environments")
        page.fill("#dsml-request-form [name=package]", IMG)
        page.fill("#dsml-request-form [name=reason]", SCRIPT)
        page.click("#dsml-request-form [type=submit]")
        result = page.locator("#dsml-request-result")
        page.wait_for_function(
            "document.getElementById('dsml-request-result').textContent.length > 0"
        )
        page.wait_for_timeout(300)
        assert page.evaluate("typeof window.__pwned") == "undefined"
        assert IMG in result.inner_text(), result.inner_text()
    finally:
        page.context.close()


def test_an_admin_sees_text_not_markup(browser, platform: Platform, stored) -> None:
    page = login(browser, platform, "admin")
    try:
        inert(page, platform.url + "/services/apps/", PAYLOAD)
        inert(page, platform.url + f"/services/apps/manage/{SLUG}", PAYLOAD, FILE)
        inert(page, platform.url + "/services/portal/environments", PAYLOAD)
        inert(page, platform.url + "/services/portal/usage")
        inert(page, platform.url + "/services/scheduler/")
        inert(page, platform.url + "/hub/admin")
    finally:
        page.context.close()
