"""The environments page (portal service) in Chromium: catalog, pins, versions, requests."""

from __future__ import annotations

from test_platform import login

from dsml.environments import find_environment

from conftest import Platform

PAGE = "/services/portal/environments"


def test_catalog_page_and_request_form(browser, platform: Platform) -> None:
    page = login(browser, platform, "newcomer")
    page.goto(platform.url + "/hub/home")
    page.click("a.nav-link:has-text('Environments')")
    page.wait_for_selector("#dsml-environments")
    assert page.url == platform.url + PAGE
    # the page has the hub's look and navigation
    for link in ("Home", "Token", "Environments", "Jobs"):
        assert page.locator(f"a.nav-link:has-text('{link}')").count() == 1, link
    assert "newcomer" in page.inner_text("#login_widget")
    for name in ("python-minimal", "datascience"):
        env = find_environment(name)
        card = page.locator(f".dsml-env[data-env='{name}']")
        text = card.inner_text()
        assert env.display_name in text and env.version in text and env.lock_sha256 in text
        assert f"{len(env.packages)} packages" in text
    card = page.locator(".dsml-env[data-env='datascience']")
    card.locator("summary").click()
    pandas = find_environment("datascience").packages["pandas"]
    assert f"pandas\t{pandas}" in card.locator(".dsml-packages").inner_text()

    page.fill("#dsml-request-form input[name=package]", "polars>=1")
    page.select_option("#dsml-request-form select[name=environment]", "datascience")
    page.fill("#dsml-request-form input[name=reason]", "faster joins in training 02")
    page.click("#dsml-request-form button[type=submit]")
    page.wait_for_function(
        "document.querySelector('#dsml-request-result').textContent.includes('sent')"
    )
    page.wait_for_selector("#dsml-requests td:has-text('polars>=1')", timeout=15_000)
    page.screenshot(path=str(platform.datadir.root / "environments-page.png"), full_page=True)
    # the same request again is refused with the reason, on the page
    page.fill("#dsml-request-form input[name=package]", "polars>=1")
    page.click("#dsml-request-form button[type=submit]")
    page.wait_for_function(
        "document.querySelector('#dsml-request-result').textContent.includes('already')"
    )
    page.context.close()

    other = login(browser, platform, "analyst")
    other.goto(platform.url + PAGE)
    assert "polars>=1" not in other.inner_text("#dsml-requests")
    assert other.locator("a.nav-link:has-text('Admin')").count() == 0
    other.context.close()
    admin = login(browser, platform, "admin")
    # the old hub URL still leads to the page
    admin.goto(platform.url + "/hub/environments")
    admin.wait_for_selector("#dsml-environments")
    assert admin.url == platform.url + PAGE
    assert "polars>=1" in admin.inner_text("#dsml-requests")
    assert "All package requests" in admin.inner_text("body")
    assert admin.locator("a.nav-link:has-text('Admin')").count() == 1
    admin.context.close()


def test_page_needs_a_login(browser, platform: Platform) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(platform.url + PAGE)
    page.wait_for_selector("#login_submit")
    assert "/hub/login" in page.url
    context.close()
