"""`dsml check` in JupyterLab: the server extension's endpoint and the status bar item.

The analyst's real JupyterLab server (started by logging in) answers
`/user/analyst/dsml/api/check?path=...` for notebooks uploaded through the contents API, and
Chromium shows the result for the open notebook in the status bar, with the findings a click
away.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_platform import login

from conftest import Platform, hub_token

FOLDER = f"labcheck-{uuid.uuid4().hex[:6]}"
NEEDS_LIGHTGBM = f"{FOLDER}/needs_lightgbm_and_catboost.ipynb"
FITS = f"{FOLDER}/fits_datascience.ipynb"
SCREENSHOT = Path("/tmp/labcheck.png")


def notebook(*cells: tuple[str, str], kernel: str = "dsml-datascience") -> dict[str, Any]:
    """A tiny nbformat 4 notebook of (cell_type, source) cells with the given kernelspec."""
    return {
        "cells": [
            {"cell_type": kind, "id": f"c{i}", "metadata": {}, "source": source}
            | ({"execution_count": None, "outputs": []} if kind == "code" else {})
            for i, (kind, source) in enumerate(cells)
        ],
        "metadata": {
            "kernelspec": {"name": kernel, "display_name": kernel, "language": "python"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


@pytest.fixture(scope="module")
def analyst(browser, platform: Platform):
    """The analyst logged in (JupyterLab started), a client with their token, two notebooks."""
    page = login(browser, platform, "analyst")
    # people land on the portal's home after login; JupyterLab is a click away
    page.wait_for_url("**/services/portal/", timeout=30_000)
    page.goto(platform.url + "/hub/spawn")
    page.wait_for_url("**/user/analyst/lab**", timeout=120_000)
    headers = {"Authorization": f"token {hub_token(platform, 'analyst')}"}
    with httpx.Client(
        base_url=platform.url + "/user/analyst/", headers=headers, timeout=120
    ) as server:
        r = server.put(f"api/contents/{FOLDER}", json={"type": "directory"})
        assert r.status_code in (200, 201), r.text
        uploads = {
            NEEDS_LIGHTGBM: notebook(
                ("markdown", "# Gradient boosting"),
                ("code", "import pandas as pd\nimport lightgbm as lgb"),
                ("code", "from catboost import CatBoostClassifier"),
            ),
            FITS: notebook(("code", "import json\n\nimport pandas as pd")),
        }
        for path, content in uploads.items():
            r = server.put(
                f"api/contents/{path}",
                json={"type": "notebook", "format": "json", "content": content},
            )
            assert r.status_code in (200, 201), r.text
        yield {"page": page, "server": server}
    page.context.close()


def test_a_missing_import_is_reported_with_cell_and_line(analyst) -> None:
    r = analyst["server"].get("dsml/api/check", params={"path": NEEDS_LIGHTGBM})
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["environment"] == "datascience"
    assert result["environment_from"] == "kernelspec"
    assert result["version"]
    assert result["supported"] is False
    assert result["counts"]["problems"] == 2
    found = {f["name"]: f for f in result["findings"]}
    lightgbm = found["lightgbm"]
    assert (lightgbm["cell"], lightgbm["line"], lightgbm["status"]) == (2, 2, "missing")
    assert lightgbm["problem"] is True
    assert "not in datascience" in lightgbm["message"]
    assert "dsml env request lightgbm --env datascience" in lightgbm["message"]
    assert (found["catboost"]["cell"], found["catboost"]["line"]) == (3, 1)
    assert found["pandas"]["status"] == "ok" and found["pandas"]["message"] == ""


def test_a_notebook_the_environment_fits_is_supported(analyst) -> None:
    r = analyst["server"].get("dsml/api/check", params={"path": FITS})
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["supported"] is True
    assert result["counts"]["problems"] == 0
    assert {f["name"]: f["status"] for f in result["findings"]} == {
        "json": "stdlib",
        "pandas": "ok",
    }


def test_the_running_kernel_wins_over_the_saved_kernelspec(analyst) -> None:
    r = analyst["server"].get(
        "dsml/api/check", params={"path": FITS, "kernel": "dsml-python-minimal"}
    )
    assert r.status_code == 200, r.text
    result = r.json()
    assert (result["environment"], result["environment_from"]) == ("python-minimal", "kernel")
    assert result["supported"] is False
    pandas = next(f for f in result["findings"] if f["name"] == "pandas")
    assert "it is in datascience" in pandas["message"]


@pytest.mark.parametrize(
    ("params", "status", "message"),
    [
        ({"path": f"{FOLDER}/not_there.ipynb"}, 404, "no such notebook"),
        ({"path": "README.md"}, 400, "not a notebook"),
        ({}, 400, "path is required"),
        ({"path": FITS, "env": "nope"}, 400, "not a curated environment"),
    ],
)
def test_bad_requests_get_json_errors(analyst, params, status, message) -> None:
    r = analyst["server"].get("dsml/api/check", params=params)
    assert r.status_code == status, r.text
    assert r.json()["status"] == status
    assert message in r.json()["message"]


def test_the_endpoint_needs_the_users_credentials(platform: Platform, analyst) -> None:
    r = httpx.get(
        platform.url + "/user/analyst/dsml/api/check",
        params={"path": FITS},
        timeout=30,
        follow_redirects=False,
    )
    assert r.status_code in (302, 403), r.text
    assert "findings" not in r.text


def test_the_status_bar_shows_the_check_and_its_findings(platform: Platform, analyst) -> None:
    page = analyst["page"]
    page.goto(f"{platform.url}/user/analyst/lab/tree/{NEEDS_LIGHTGBM}")
    item = page.locator("#dsml-env-check[data-state='warn']")
    item.wait_for(timeout=120_000)
    assert item.inner_text().strip() == "Env ⚠ 2 issues"
    item.click()
    dialog = page.locator(".jp-Dialog .dsml-EnvCheck-dialog")
    dialog.wait_for(timeout=30_000)
    rows = dialog.locator("tr.dsml-EnvCheck-problem")
    assert rows.count() == 2
    cells = [c.strip() for c in rows.first.locator("td").all_inner_texts()]
    assert cells[:2] == ["2", "2"]
    assert "import lightgbm" in cells[2] and "not in datascience" in cells[2]
    assert "catboost" in dialog.inner_text()
    page.screenshot(path=str(SCREENSHOT))
    page.locator(".jp-Dialog").get_by_role("button", name="Close").click()
    dialog.wait_for(state="detached", timeout=10_000)

    page.goto(f"{platform.url}/user/analyst/lab/tree/{FITS}")
    ok = page.locator("#dsml-env-check[data-state='ok']")
    ok.wait_for(timeout=120_000)
    assert ok.inner_text().strip() == "Env ✓ datascience"
