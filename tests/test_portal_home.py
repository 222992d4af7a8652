"""The portal's home page per role, in Chromium: where everyone lands after signing in.

A newcomer sees their training (0 passed, the next module); an analyst their jobs and last
runs; a stakeholder their apps and no way into JupyterLab; an admin the platform's health and
usage figures. With the scheduler frozen the page still answers and says jobs are unavailable.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import httpx
from test_platform import login
from test_scheduler_api import NOTEBOOKS, Api

from conftest import ROOT, Platform, hub_token

HOME = re.compile(r".*/services/portal/$")
"""The portal's home page URL."""

CURRICULUM = ROOT / "training" / "curriculum.json"
"""The training modules (written by the training part of issue #10)."""


def portal_api(platform: Platform, path: str, name: str) -> dict:
    """GET a portal API path as `name`."""
    r = httpx.get(
        f"{platform.url}/services/portal/api/{path}",
        headers={"Authorization": f"token {hub_token(platform, name)}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text[:300]
    return r.json()


def signed_in(browser, platform: Platform, name: str):  # type: ignore[no-untyped-def]
    """`name` signed in through the form, on the page the hub sent them to (the home)."""
    page = login(browser, platform, name)
    page.wait_for_url(HOME, timeout=30_000)
    page.wait_for_selector("#dsml-home")
    return page


def scheduler_pid(platform: Platform) -> int:
    """The scheduler service process of this platform (found by its data dir)."""
    wanted = str(platform.datadir.root / "scheduler").encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"dsml.scheduler\x00" in cmdline and b"worker" not in cmdline and wanted in cmdline:
            return int(entry.name)
    raise AssertionError("the scheduler service process was not found")


def test_newcomer_lands_on_home_with_their_training(browser, platform: Platform) -> None:
    """The home shows the newcomer's own progress and links the next module to do."""
    page = signed_in(browser, platform, "newcomer")
    assert page.locator("[data-dsml-nav=lab]").is_visible()
    # other tests of the session (the API's fuzzing) record exercises too: compare with the API
    mine = portal_api(platform, "training/progress", "newcomer")
    passed = sum(m["passed"] for m in mine["modules"])
    assert page.get_attribute("#dsml-training-progress", "data-passed") == str(passed)
    link = page.locator("#dsml-next-module a")
    assert f"Module {mine['next']['number']}" in link.inner_text()
    assert f"training/{mine['next']['notebook']}" in link.get_attribute("href")
    page.context.close()


def test_analyst_sees_their_jobs_and_last_runs(browser, platform: Platform) -> None:
    api = Api(platform, "analyst")
    job = api.create_job(NOTEBOOKS / "sleeps.ipynb", name="home page job")
    api.wait(api.start(job, {"seconds": 0}))
    page = signed_in(browser, platform, "analyst")
    row = page.locator(f"#dsml-jobs .dsml-home-job[data-job='{job['id']}']")
    assert "home page job" in row.inner_text()
    assert row.locator(".state").inner_text() == "succeeded"
    # the run's page opens from the home page, as a person clicks it
    row.locator("a").first.click()
    page.wait_for_url(re.compile(r".*/services/scheduler/runs/\d+"))
    # another person's home does not show this job
    other = signed_in(browser, platform, "scientist")
    assert "home page job" not in other.inner_text("#dsml-jobs")
    other.context.close()
    page.context.close()


def test_stakeholder_lands_on_their_apps_without_jupyterlab(browser, platform: Platform) -> None:
    nb = json.loads((ROOT / "tests" / "notebooks" / "app_slider.ipynb").read_text())
    r = httpx.post(
        f"{platform.url}/services/apps/api/apps",
        headers={"Authorization": f"token {hub_token(platform, 'scientist')}"},
        json={"slug": "home-for-stakeholders", "title": "Home for stakeholders", "notebook": nb,
              "environment": "datascience", "share": {"groups": ["stakeholders"]}},
        timeout=120,
    )  # fmt: skip
    assert r.status_code == 201, r.text
    page = signed_in(browser, platform, "stakeholder")
    # shared with the stakeholders group
    page.wait_for_selector("#dsml-apps .dsml-home-app[data-slug=home-for-stakeholders]")
    assert page.locator("#dsml-apps").is_visible()
    body = page.inner_text("body")
    assert "JupyterLab" not in body
    assert page.locator("[data-dsml-nav=lab]").count() == 0
    assert page.locator("#dsml-jobs").count() == 0
    # the hub's own home offers no Start button to someone who may not use it
    page.goto(platform.url + "/hub/home")
    assert page.locator("#start").count() == 0
    assert page.locator("#dsml-no-lab").is_visible()
    page.context.close()


def test_admin_sees_health_and_usage(browser, platform: Platform) -> None:
    page = signed_in(browser, platform, "admin")
    assert page.locator("[data-dsml-nav=admin]").is_visible()
    health = page.locator("#dsml-health .dsml-health-part")
    assert health.count() >= 3
    assert page.locator("#dsml-health [data-part=hub]").is_visible()
    assert page.locator("#dsml-usage").is_visible()
    assert page.locator("#dsml-usage-figures").is_visible()
    page.context.close()


def test_home_answers_with_the_scheduler_stopped(browser, platform: Platform) -> None:
    page = signed_in(browser, platform, "analyst")
    pid = scheduler_pid(platform)
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        response = page.goto(platform.url + "/services/portal/")
        took = time.monotonic() - started
        assert response.status == 200
        assert "Jobs are unavailable right now" in page.inner_text("#dsml-jobs")
        # the rest of the page is there
        assert page.locator("#dsml-apps").is_visible()
        assert took < 20, f"the home page took {took:.1f} s with the scheduler stopped"
    finally:
        os.kill(pid, signal.SIGCONT)
    page.context.close()


def _attempts(platform: Platform, notebook: str, exercise: str) -> tuple[int, bool]:
    """The newcomer's attempts at one exercise and whether it passed, from the portal's API."""
    mine = portal_api(platform, "training/progress", "newcomer")
    for entry in mine["results"]:
        if entry["notebook"] == notebook and entry["exercise"] == exercise:
            return int(entry["attempts"]), bool(entry["passed"])
    return 0, False


def test_newcomer_answers_module_1_and_admin_sees_them(browser, platform: Platform) -> None:
    """End to end: the newcomer opens module 1 from home, answers an exercise, progresses."""
    curriculum = json.loads(CURRICULUM.read_text())
    first = curriculum["modules"][0]
    exercise_id = first["exercises"][0]
    # other tests of the session record exercises too: count this exercise's attempts
    tried, _ = _attempts(platform, first["notebook"], exercise_id)
    page = signed_in(browser, platform, "newcomer")
    # open module 1 from the home page (JupyterLab starts and opens the notebook)
    page.click("#dsml-next-module a")
    page.wait_for_url(f"**/user/newcomer/lab/tree/training/{first['notebook']}", timeout=120_000)
    page.wait_for_selector(".jp-Notebook", timeout=120_000)
    # answer module 1's first exercise (seconds in a week) as a person does: type the answer in
    # its ✏️ cell, then Run > Run All Cells; the self-check records it through the portal
    exercise = page.locator(".jp-CodeCell", has_text="seconds_in_a_week = None").first
    exercise.locator(".cm-content").click()
    page.keyboard.press("Control+A")
    page.keyboard.type("seconds_in_a_week = 7 * 24 * 60 * 60")
    page.click(".lm-MenuBar-itemLabel:text-is('Run')")
    page.click(".lm-Menu-itemLabel:text-is('Run All Cells')")
    check = page.locator(".jp-CodeCell", has_text=f'selfcheck.check("{exercise_id}"')
    check.locator(".jp-OutputArea-output", has_text="Correct").wait_for(timeout=120_000)
    deadline = time.monotonic() + 60
    while True:
        attempts, passed = _attempts(platform, first["notebook"], exercise_id)
        if attempts > tried or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert attempts > tried and passed
    # the home page shows what the portal holds
    modules = portal_api(platform, "training/progress", "newcomer")["modules"]
    total = sum(m["passed"] for m in modules)
    page.goto(platform.url + "/services/portal/")
    assert page.get_attribute("#dsml-training-progress", "data-passed") == str(total)
    page.context.close()
    admin = signed_in(browser, platform, "admin")
    admin.click("[data-dsml-nav=training]")
    admin.wait_for_selector("#dsml-learners")
    row = admin.locator("#dsml-learners .dsml-learner[data-user=newcomer]")
    assert row.count() == 1
    assert row.locator("td").nth(1).inner_text().startswith(f"{total} of")
    admin.context.close()
