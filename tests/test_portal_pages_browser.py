"""The portal's pages and the platform's one look, in Chromium.

The usage page draws its charts with the plotly.js the portal serves itself and asks no other
host (the platform works air-gapped); the navigation is the same on the hub's pages, the
portal, the scheduler's page and the apps gallery; the home page reads on a phone.
"""

from __future__ import annotations

import json
import re
import time

import httpx
from test_platform import login

from conftest import Platform, hub_token

PAGES = {
    "hub home": "/hub/home",
    "portal home": "/services/portal/",
    "training": "/services/portal/training",
    "usage": "/services/portal/usage",
    "environments": "/services/portal/environments",
    "scheduler": "/services/scheduler/",
    "apps gallery": "/services/apps/",
}
"""Every page that carries the platform's navigation."""


def nav_of(page) -> list[tuple[str, str, str]]:  # type: ignore[no-untyped-def]
    """The navigation's items as (key, label, absolute link)."""
    return page.eval_on_selector_all(
        "#thenavbar [data-dsml-nav]",
        "els => els.map(e => [e.dataset.dsmlNav, e.textContent.trim(), e.href])",
    )


def test_plotly_is_served_by_the_portal(platform: Platform) -> None:
    r = httpx.get(platform.url + "/services/portal/static/plotly.min.js", timeout=30)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith(("application/javascript", "text/javascript"))
    assert len(r.content) > 1_000_000 and b"plotly" in r.content[:2000].lower()
    other = httpx.get(platform.url + "/services/portal/static/other.js", timeout=30)
    assert other.status_code == 404


def test_usage_page_draws_charts_and_asks_no_other_host(browser, platform: Platform) -> None:
    token = hub_token(platform, "analyst")
    r = httpx.get(
        platform.url + "/services/portal/api/usage",
        headers={"Authorization": f"token {token}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text[:300]
    page = login(browser, platform, "analyst")
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    page.click("[data-dsml-nav=usage]")
    page.wait_for_url("**/services/portal/usage")
    page.wait_for_selector("#dsml-charts .dsml-chart svg.main-svg", timeout=30_000)
    assert page.locator("#chart-runs svg.main-svg").count() >= 1
    assert page.locator("#chart-environments svg.main-svg").count() >= 1
    page.wait_for_load_state("networkidle")
    elsewhere = [u for u in asked if not u.startswith(platform.url) and not u.startswith("data:")]
    assert elsewhere == [], elsewhere
    page.context.close()


def test_the_navigation_is_the_same_on_every_page(browser, platform: Platform) -> None:
    page = login(browser, platform, "analyst")
    page.wait_for_url(re.compile(r".*/services/portal/$"), timeout=30_000)
    seen = {}
    for name, path in PAGES.items():
        response = page.goto(platform.url + path)
        assert response.status == 200, (name, response.status)
        seen[name] = nav_of(page)
    first = seen["portal home"]
    assert [key for key, _, _ in first] == [
        "home",
        "lab",
        "jobs",
        "apps",
        "training",
        "environments",
        "usage",
        "token",
    ]
    for name, items in seen.items():
        assert items == first, name
    # each page marks itself in the navigation
    page.goto(platform.url + "/services/scheduler/")
    assert page.get_attribute("[data-dsml-nav=jobs]", "aria-current") == "page"
    page.goto(platform.url + "/services/apps/")
    assert page.get_attribute("[data-dsml-nav=apps]", "aria-current") == "page"
    page.context.close()
    # an admin also gets Admin; a stakeholder gets neither JupyterLab nor Jobs
    admin = login(browser, platform, "admin")
    keys = [key for key, _, _ in nav_of(admin)]
    assert "admin" in keys and "lab" in keys
    admin.goto(platform.url + "/services/scheduler/")
    assert "admin" in [key for key, _, _ in nav_of(admin)]
    admin.context.close()
    stakeholder = login(browser, platform, "stakeholder")
    for path in ("/services/portal/", "/services/apps/", "/hub/home"):
        stakeholder.goto(platform.url + path)
        keys = [key for key, _, _ in nav_of(stakeholder)]
        assert "lab" not in keys and "jobs" not in keys and "admin" not in keys, (path, keys)
        assert "home" in keys and "apps" in keys
    stakeholder.context.close()


def test_home_reads_on_a_phone(browser, platform: Platform) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    page.goto(platform.url + "/hub/login")
    page.fill("#username_input", "analyst")
    page.fill("#password_input", platform.password("analyst"))
    page.click("#login_submit")
    page.wait_for_url(re.compile(r".*/services/portal/$"), timeout=30_000)
    wide = page.evaluate("document.documentElement.scrollWidth")
    assert wide <= 390 + 1, f"the home page is {wide} px wide on a 390 px phone"
    # the navigation folds behind its toggler, and opens
    assert not page.locator("[data-dsml-nav=jobs]").is_visible()
    page.click(".navbar-toggler")
    page.locator("[data-dsml-nav=jobs]").wait_for(state="visible")
    context.close()


def test_jupyterlab_asks_no_news_question(platform: Platform) -> None:
    """The plugin that fetches Jupyter news and update checks (and asks about it) is off."""
    token = hub_token(platform, "analyst")
    headers = {"Authorization": f"token {token}"}
    with httpx.Client(base_url=platform.url, headers=headers, timeout=60) as client:
        r = client.post("/hub/api/users/analyst/server")
        assert r.status_code in (201, 202, 400), r.text  # 400: it runs already
        deadline = time.monotonic() + 120
        while not client.get("/hub/api/users/analyst").json()["servers"].get("", {}).get("ready"):
            assert time.monotonic() < deadline, "the analyst's server did not start"
            time.sleep(0.5)
        page = client.get("/user/analyst/lab")
        assert page.status_code == 200
    found = re.search(
        r'<script id="jupyter-config-data" type="application/json">(.*?)</script>',
        page.text,
        re.S,
    )
    assert found, "no page config in JupyterLab's page"
    config = json.loads(found.group(1))
    assert "@jupyterlab/apputils-extension:announcements" in config["disabledExtensions"]
