"""The environments page in Chromium: catalog with pins and versions, and package requests."""

from __future__ import annotations

from test_platform import login

from dsml.environments import find_environment

from conftest import Platform


def test_catalog_page_and_request_form(browser, platform: Platform) -> None:
    page = login(browser, platform, "newcomer")
    page.goto(platform.url + "/hub/home")
    page.click("a.nav-link:has-text('Environments')")
    page.wait_for_selector("#dsml-environments")
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
    other.goto(platform.url + "/hub/environments")
    assert "polars>=1" not in other.inner_text("#dsml-requests")
    other.context.close()
    admin = login(browser, platform, "admin")
    admin.goto(platform.url + "/hub/environments")
    assert "polars>=1" in admin.inner_text("#dsml-requests")
    assert "All package requests" in admin.inner_text("body")
    admin.context.close()
