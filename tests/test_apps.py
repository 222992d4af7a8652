"""The apps service against the real platform: publish, versions, rollback, shares, rights, limits.

Everything goes through the running hub and the `apps` service (`dsml up --demo`, the session's
platform); app servers are real Voila servers started by the hub. The browser tests (a
stakeholder opening an app, the consent page, waking a stopped app) are in
test_apps_browser.py.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import httpx
import pytest

from conftest import Platform, hub_token

NOTEBOOKS = Path(__file__).parent / "notebooks"


def slider_notebook() -> dict:
    """A notebook with an ipywidgets slider, an image output and a file it reads."""
    return json.loads((NOTEBOOKS / "widget_slider.ipynb").read_text())


def b64(data: bytes) -> str:
    """Base64 text of bytes, as the publish request carries files."""
    return base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def apps(platform: Platform):
    """API clients of the apps service, one per demo user, each with the user's own token."""
    clients = {
        name: httpx.Client(
            base_url=platform.url + "/services/apps/api/",
            headers={"Authorization": f"token {hub_token(platform, name)}"},
            timeout=60,
        )
        for name in ("scientist", "analyst", "stakeholder", "admin")
    }
    yield clients
    for client in clients.values():
        client.close()


def publish(client: httpx.Client, **body) -> httpx.Response:
    """POST a publish request with the slider notebook unless the body names another."""
    body.setdefault("notebook", slider_notebook())
    body.setdefault("title", "Squares")
    return client.post("apps", json=body)


def test_publish_versions_rollback(apps) -> None:
    sci = apps["scientist"]
    r = publish(
        sci,
        slug="squares-api",
        description="n squared",
        files={"data/factor.txt": b64(b"1")},
        notebook_path="work/squares.ipynb",
    )
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["version"]["version"] == 1
    assert first["version"]["files"] == ["data/factor.txt"]
    assert first["version"]["environment"] == "datascience"
    assert first["version"]["thumbnail"] is True  # the notebook's first image output
    assert first["url"].endswith("/services/apps/a/squares-api")
    assert first["app"]["server"] == "app-squares-api"

    r = publish(sci, slug="squares-api", files={"data/factor.txt": b64(b"2")})
    assert r.status_code == 201, r.text
    second = r.json()
    assert second["version"]["version"] == 2
    assert second["url"] == first["url"]  # the link never changes across versions
    assert second["version"]["sha256"] != first["version"]["sha256"]

    versions = sci.get("apps/squares-api/versions").json()["versions"]
    assert [v["version"] for v in versions] == [2, 1]
    assert sci.get("apps/squares-api").json()["current_version"] == 2

    r = sci.post("apps/squares-api/rollback", json={"version": 1})
    assert r.status_code == 200, r.text
    assert r.json()["current_version"] == 1
    r = sci.post("apps/squares-api/rollback", json={"version": 7})
    assert r.status_code == 400 and "no version 7" in r.json()["message"]

    # the bundle the app server gets is version 1's, byte for byte
    r = sci.get("apps/squares-api/bundle")
    assert r.status_code == 200
    assert r.headers["X-Dsml-App-Version"] == "1"
    assert r.headers["X-Dsml-Sha256"] == first["version"]["sha256"]
    assert r.headers["X-Dsml-Kernel"].startswith("dsml-datascience--")
    thumb = sci.get("apps/squares-api/thumbnail")
    assert thumb.status_code == 200 and thumb.content.startswith(b"\x89PNG")


def test_only_the_owner_changes_and_others_do_not_see(apps) -> None:
    sci, analyst = apps["scientist"], apps["analyst"]
    assert publish(sci, slug="private-app").status_code == 201
    # not shared: not there for the analyst
    assert analyst.get("apps/private-app").status_code == 404
    assert "private-app" not in [a["slug"] for a in analyst.get("apps").json()["apps"]]
    # a slug someone else owns is a conflict, not a takeover
    r = publish(analyst, slug="private-app")
    assert r.status_code == 409 and "belongs to scientist" in r.json()["message"]
    # shared: the analyst sees it but may not change it
    assert sci.post("apps/private-app/shares", json={"users": ["analyst"]}).status_code == 200
    assert analyst.get("apps/private-app").status_code == 200
    for method, path, body in [
        ("POST", "apps/private-app/rollback", {"version": 1}),
        ("PATCH", "apps/private-app", {"title": "mine now"}),
        ("DELETE", "apps/private-app", None),
        ("POST", "apps/private-app/shares", {"users": ["stakeholder"]}),
        ("GET", "apps/private-app/logs", None),
        ("GET", "apps/private-app/bundle", None),
    ]:
        r = analyst.request(method, path, json=body)
        assert r.status_code == 403, (method, path, r.text)
        assert "only scientist" in r.json()["message"]
    # an apps admin may
    r = apps["admin"].patch("apps/private-app", json={"description": "checked by admin"})
    assert r.status_code == 200, r.text
    assert apps["admin"].get("apps", params={"all": "1"}).status_code == 200
    assert analyst.get("apps", params={"all": "1"}).status_code == 403


def test_unknown_share_target_is_a_400_and_nothing_is_stored(apps) -> None:
    sci = apps["scientist"]
    before = sci.get("apps").json()["apps"]
    r = publish(sci, slug="never-stored", share={"groups": ["no-such-group"]})
    assert r.status_code == 400
    assert r.json()["message"] == "cannot share with group 'no-such-group': no such group"
    r = publish(sci, slug="never-stored", share={"users": ["nobody-here"]})
    assert r.status_code == 400 and "'nobody-here'" in r.json()["message"]
    assert sci.get("apps").json()["apps"] == before
    assert sci.get("apps/never-stored").status_code == 404


def test_group_share_and_revocation(apps) -> None:
    sci, stakeholder = apps["scientist"], apps["stakeholder"]
    r = publish(sci, slug="for-stakeholders", share={"groups": ["stakeholders"]})
    assert r.status_code == 201, r.text
    assert r.json()["app"]["shared"]["groups"] == ["stakeholders"]
    listed = [a["slug"] for a in stakeholder.get("apps").json()["apps"]]
    assert "for-stakeholders" in listed
    r = sci.delete("apps/for-stakeholders/shares/groups/stakeholders")
    assert r.status_code == 200 and r.json()["groups"] == []
    assert stakeholder.get("apps/for-stakeholders").status_code == 404


@pytest.mark.parametrize(
    "body, status, words",
    [
        ({"notebook": {"cells": "no"}}, 400, "nbformat"),
        (
            {"notebook": {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [1]}},
            400,
            "cell 1 is not a notebook cell",
        ),
        ({"notebook": "text"}, 400, "nbformat 4 JSON object"),
        ({"files": {"../etc/passwd": b64(b"x")}}, 400, "relative path below"),
        ({"files": {"/abs": b64(b"x")}}, 400, "relative path below"),
        ({"files": {"ok.txt": "not base64!"}}, 400, "not valid base64"),
        ({"files": {f"f{i}.txt": b64(b"x") for i in range(21)}}, 413, "the limit is 20"),
        ({"slug": "Bad_Slug"}, 400, "lowercase letters"),
        ({"slug": "a" * 27}, 400, "lowercase letters"),
        ({"title": ""}, 400, "title must be"),
        ({"title": "<script>" * 40}, 400, "title must be"),
        ({"environment": "no-such-env"}, 400, "pick one of"),
        ({"share": {"users": "analyst"}}, 400, "share.users must be a list"),
        ({"thumbnail": b64(b"GIF89a")}, 400, "PNG or JPEG"),
    ],
)
def test_bad_publish_requests(apps, body: dict, status: int, words: str) -> None:
    sci = apps["scientist"]
    count = len(sci.get("apps", params={"owned": "1"}).json()["apps"])
    r = publish(sci, **{"slug": "bad-input", **body})
    assert r.status_code == status, r.text
    assert words in r.json()["message"]
    assert len(sci.get("apps", params={"owned": "1"}).json()["apps"]) == count


def test_a_body_over_the_limit_is_a_413(apps) -> None:
    big = b64(b"x" * (21 * 1024 * 1024))
    r = publish(apps["scientist"], slug="too-big", files={"big.bin": big})
    assert r.status_code == 413, r.text[:300]


def test_usage_counts_reported_views(apps) -> None:
    sci = apps["scientist"]
    assert publish(sci, slug="counted").status_code == 201
    views = [
        {"viewer": "stakeholder", "version": 1, "render_seconds": 0.2},
        {"viewer": "stakeholder", "version": 1, "render_seconds": 0.4},
        {"viewer": "analyst", "version": 1, "render_seconds": 0.3},
    ]
    # (the app's own server reports its log tail too: check the error, which it leaves alone)
    r = sci.post("apps/counted/events", json={"views": views, "error": "boom"})
    assert r.status_code == 204, r.text
    usage = sci.get("apps/counted/usage").json()
    assert (usage["views"], usage["unique_viewers"]) == (3, 2)
    assert usage["render_seconds_p50"] == pytest.approx(0.3)
    assert usage["versions"][0]["views"] == 3
    assert sci.get("apps/counted/logs").json()["error"] == "boom"
    # a viewer cannot post views to someone else's app
    r = apps["stakeholder"].post("apps/counted/events", json={"views": views})
    assert r.status_code == 404


def test_metrics_show_usage(platform: Platform, apps) -> None:
    sci = apps["scientist"]
    if sci.get("apps/counted").status_code == 404:
        pytest.skip("needs test_usage_counts_reported_views first")
    r = httpx.get(
        platform.url + "/services/apps/metrics",
        headers={"Authorization": sci.headers["Authorization"]},
    )
    assert r.status_code == 200
    assert 'dsml_app_views_total{app="counted",version="1"} 3.0' in r.text
    assert 'dsml_app_unique_viewers{app="counted"} 2.0' in r.text


def test_delete_removes_the_app(apps) -> None:
    sci = apps["scientist"]
    assert publish(sci, slug="short-lived", share={"users": ["analyst"]}).status_code == 201
    assert sci.delete("apps/short-lived").status_code == 204
    assert sci.get("apps/short-lived").status_code == 404
    assert apps["analyst"].get("apps/short-lived").status_code == 404
    # the slug is free again
    assert publish(sci, slug="short-lived").status_code == 201


def wait_for(check, seconds: float = 60.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    """Poll `check()` until it returns something true."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"{what} not reached in {seconds} s")
