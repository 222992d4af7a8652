"""The scheduler's service page in Chromium: my jobs and runs, live status, links to output."""

from __future__ import annotations

from test_platform import login
from test_scheduler_api import NOTEBOOKS, Api

from conftest import Platform


def test_page_lists_my_jobs_and_runs_with_live_status(browser, platform: Platform) -> None:
    api = Api(platform, "scientist")
    job = api.create_job(NOTEBOOKS / "sleeps.ipynb", name="page sleeper")
    run = api.start(job, {"seconds": 4})
    page = login(browser, platform, "scientist")
    page.goto(platform.url + "/services/scheduler/")
    page.wait_for_selector("#jobs", timeout=60_000)
    assert "page sleeper" in page.inner_text("#jobs")
    row = f"tr[data-run='{run['id']}']"
    page.wait_for_selector(row)
    # the page follows the run to its end without a manual reload
    page.wait_for_function(
        f"document.querySelector(\"{row} .state\")?.textContent === 'succeeded'",
        timeout=90_000,
    )
    page.screenshot(path=str(platform.datadir.root / "scheduler-page.png"), full_page=True)
    link = page.locator(f"{row} a", has_text="html")
    href = link.get_attribute("href")
    response = page.goto(platform.url + href)
    assert response.status == 200
    assert "woke up" in page.content()
    # another user's page does not show this job
    other = login(browser, platform, "analyst")
    other.goto(platform.url + "/services/scheduler/")
    other.wait_for_selector("#jobs", timeout=60_000)
    assert "page sleeper" not in other.inner_text("body")
    other.context.close()
    page.context.close()
