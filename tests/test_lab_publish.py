"""JupyterLab's "Publish as app…", driven in Chromium as people use it, on the apps service.

A data scientist opens a notebook with a slider, presses the toolbar's Publish button, fills the
title, ticks the stakeholders group, publishes and reads the link; a stakeholder opens the link
in a browser of their own: no consent page, no notebook source, and moving the slider changes
the output. Re-publishing the same notebook offers a new version of the same app. The files the
notebook names travel with it, within limits; the service's refusals reach the dialog.
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from test_platform import login

from dsml.lab.apps import PublishError, named_files

from conftest import Platform, hub_token

SUFFIX = uuid.uuid4().hex[:6]
FOLDER = f"publish-{SUFFIX}"
NOTEBOOK = f"{FOLDER}/slider-{SUFFIX}.ipynb"
TITLE = f"Squares {SUFFIX}"
VIEWER = f"viewer-{SUFFIX}"
VIEWER_PASSWORD = f"pw-{uuid.uuid4().hex}"
SCREENSHOTS = Path("/tmp")

SLIDER_CODE = """\
import csv
import ipywidgets as widgets
from IPython.display import display

with open("data/points.csv") as f:
    points = [int(row["points"]) for row in csv.DictReader(f)]
slider = widgets.IntSlider(value=3, min=1, max=10, description="factor")
result = widgets.HTML()

def show(change=None):
    result.value = f"<span class='dsml-result'>total: {slider.value * sum(points)}</span>"

slider.observe(show, names="value")
show()
display(widgets.VBox([slider, result]))
"""


def notebook(code: str, kernel: str = "dsml-datascience") -> dict[str, Any]:
    """A one-cell notebook whose kernelspec names `kernel`."""
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": kernel, "display_name": kernel, "language": "python"}},
        "cells": [
            {"cell_type": "markdown", "id": "m1", "metadata": {}, "source": "# Squares"},
            {"cell_type": "code", "id": "c1", "metadata": {}, "source": code, "outputs": [],
             "execution_count": None},
        ],
    }  # fmt: skip


# the files a notebook names (no platform needed)


def test_named_files_are_the_existing_files_under_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "project"
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "sales.csv").write_bytes(b"a,b\n1,2\n")
    (folder / "lookup.json").write_text("{}")
    (folder / ".secret").write_text("x")
    (tmp_path / "outside.txt").write_text("outside")
    (folder / "escape.txt").symlink_to(tmp_path / "outside.txt")
    (folder / "inside-link.csv").symlink_to(folder / "data" / "sales.csv")
    code = "\n".join(
        [
            'pd.read_csv("data/sales.csv")',
            "json.load(open('./lookup.json'))",
            'open("data/sales.csv")',  # twice: once
            'open("../outside.txt"); open("/etc/passwd"); open("escape.txt")',
            'open(".secret"); open("data"); open("missing.csv"); print("hello world")',
            'open("inside-link.csv"); open("report.ipynb"); url = "https://x/y.csv"',
        ]
    )
    nb = notebook(code)
    nb["cells"].append({"cell_type": "markdown", "source": 'open("lookup2.json")'})
    (folder / "lookup2.json").write_text("[]")
    files = named_files(nb, str(folder), "report.ipynb")
    assert sorted(files) == ["data/sales.csv", "inside-link.csv", "lookup.json"]
    assert files["data/sales.csv"] == b"a,b\n1,2\n"


def test_named_files_over_the_limits_are_refused_with_the_rule(tmp_path: Path) -> None:
    for i in range(4):
        (tmp_path / f"part-{i}.csv").write_text("x" * 100)
    nb = notebook("\n".join(f'open("part-{i}.csv")' for i in range(4)))
    assert len(named_files(nb, str(tmp_path), "nb.ipynb", max_files=4)) == 4
    with pytest.raises(PublishError) as e:
        named_files(nb, str(tmp_path), "nb.ipynb", max_files=3)
    assert e.value.status == 413
    assert "more than 3 files" in e.value.message and "nb.ipynb" in e.value.message
    with pytest.raises(PublishError) as e:
        named_files(nb, str(tmp_path), "nb.ipynb", max_bytes=350)
    assert e.value.status == 413 and "the limit is 350" in e.value.message


# on the real platform, in Chromium


class Author:
    """The data scientist: their JupyterLab page and API clients with their token."""

    def __init__(self, platform: Platform, page: Any):
        self.platform = platform
        self.page = page
        headers = {"Authorization": f"token {hub_token(platform, 'scientist')}"}
        self.server = httpx.Client(
            base_url=platform.url + "/user/scientist/", headers=headers, timeout=180
        )
        self.apps = httpx.Client(
            base_url=platform.url + "/services/apps/api/", headers=headers, timeout=60
        )

    def put(self, path: str, model: dict[str, Any]) -> None:
        """Save a file, folder or notebook in the scientist's home through their server."""
        r = self.server.put(f"api/contents/{path}", json=model)
        assert r.status_code in (200, 201), r.text


@pytest.fixture(scope="module")
def author(browser, platform: Platform):
    """The scientist signed in, JupyterLab up, the slider notebook and its data in a folder."""
    page = login(browser, platform, "scientist")
    # people land on the portal's home after login; JupyterLab is a click away
    page.wait_for_url("**/services/portal/", timeout=30_000)
    page.goto(platform.url + "/hub/spawn")
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.wait_for_url("**/user/scientist/lab**", timeout=120_000)
    page.wait_for_selector("#jp-main-dock-panel", timeout=120_000)
    person = Author(platform, page)
    person.put(FOLDER, {"type": "directory"})
    person.put(f"{FOLDER}/data", {"type": "directory"})
    person.put(
        f"{FOLDER}/data/points.csv",
        {"type": "file", "format": "text", "content": "points\n1\n2\n4\n"},
    )
    person.put(NOTEBOOK, {"type": "notebook", "format": "json", "content": notebook(SLIDER_CODE)})
    yield person
    page.context.close()


@pytest.fixture(scope="module")
def viewer(platform: Platform, admin_api: httpx.Client) -> str:
    """A stakeholder of their own (group stakeholders) with a password."""
    assert admin_api.post(f"users/{VIEWER}").status_code == 201
    r = admin_api.post("groups/stakeholders/users", json={"users": [VIEWER]})
    assert r.status_code == 200, r.text
    r = admin_api.put(f"dsml/users/{VIEWER}/password", json={"password": VIEWER_PASSWORD})
    assert r.status_code in (200, 204), r.text
    return VIEWER


def is_publish(r: Any) -> bool:
    """The dialog's publish call (JupyterLab adds a cache-busting query)."""
    return r.request.method == "POST" and urlsplit(r.url).path.endswith("/dsml/api/apps/publish")


def open_publish_dialog(page: Any, platform: Platform, add_cell: bool = False) -> Any:
    """Open the notebook in JupyterLab, press the toolbar's Publish button; return the dialog.

    With `add_cell`, first add a cell with the toolbar's + button (an unsaved change).
    """
    page.goto(f"{platform.url}/user/scientist/lab/tree/{NOTEBOOK}")
    panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
    button = panel.locator(".jp-NotebookPanel-toolbar").get_by_role(
        "button", name="Publish", exact=True
    )
    button.wait_for(timeout=120_000)
    page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=60_000)
    # the kernel is up (the status bar says Idle), so no kernel dialog is in the way
    page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(timeout=120_000)
    if add_cell:
        toolbar = panel.locator(".jp-NotebookPanel-toolbar")
        toolbar.get_by_role("button", name=re.compile(r"^Insert a cell below")).click()
        page.locator(".jp-Notebook .jp-Cell").nth(2).wait_for(timeout=30_000)
    button.click()
    dialog = page.locator(".jp-Dialog")
    dialog.get_by_label("Title").wait_for(timeout=60_000)
    return dialog


def test_a_stakeholder_uses_the_app_the_scientist_published(
    author: Author, viewer: str, browser, platform: Platform
) -> None:
    page = author.page
    dialog = open_publish_dialog(page, platform)
    title = dialog.get_by_label("Title")
    assert title.input_value() == f"slider-{SUFFIX}"  # the notebook's file name
    environment = dialog.get_by_label("Environment")
    assert environment.input_value() == "datascience"  # the notebook's kernel's
    offered = environment.locator("option").evaluate_all("os => os.map(o => o.value)")
    assert sorted(offered) == ["datascience", "python-minimal"]
    groups = ["analysts", "data-scientists", "stakeholders", "newcomers", "Everyone"]
    for group in groups:
        assert not dialog.get_by_label(group, exact=True).is_checked()
    assert "is published as" not in dialog.inner_text()
    title.fill(TITLE)
    dialog.get_by_label("stakeholders", exact=True).check()
    page.screenshot(path=str(SCREENSHOTS / "lab-publish-dialog.png"))

    started = time.monotonic()
    with page.expect_response(is_publish, timeout=180_000) as answer:
        dialog.get_by_role("button", name="Publish", exact=True).click()
    publish_seconds = time.monotonic() - started
    assert answer.value.status == 201, answer.value.text()
    sent = json.loads(answer.value.request.post_data)
    assert sent["share_groups"] == ["stakeholders"] and sent["everyone"] is False
    done = page.locator(".jp-Dialog").filter(has_text="is published")
    link = done.locator(".dsml-Publish-link a")
    link.wait_for(timeout=60_000)
    url = link.inner_text().strip()
    assert link.get_attribute("href") == url
    assert re.fullmatch(re.escape(platform.url) + r"/services/apps/a/[a-z][a-z0-9-]*", url), url
    assert done.get_by_role("button", name="Copy").is_visible()
    page.screenshot(path=str(SCREENSHOTS / "lab-publish-link.png"))
    done.get_by_role("button", name="Close").click()
    slug = url.rsplit("/", 1)[1]
    app = author.apps.get(f"apps/{slug}").json()
    assert app["title"] == TITLE and app["shared"]["groups"] == ["stakeholders"]
    versions = author.apps.get(f"apps/{slug}/versions").json()["versions"]
    assert versions[0]["notebook_path"] == NOTEBOOK
    assert versions[0]["files"] == ["data/points.csv"]
    print(f"publish from the dialog: {publish_seconds:.2f} s")

    # the stakeholder, in a browser of their own
    page2 = login(browser, platform, viewer, VIEWER_PASSWORD)
    try:
        started = time.monotonic()
        page2.goto(url, timeout=240_000)
        result = page2.locator(".dsml-result")
        result.wait_for(timeout=240_000)
        render_seconds = time.monotonic() - started
        print(f"stakeholder's first render: {render_seconds:.2f} s")
        assert "Authorize access" not in page2.content()
        assert f"/user/scientist/app-{slug}" in page2.url, page2.url
        assert result.inner_text() == "total: 21"  # 3 * (1 + 2 + 4): the data file came along
        # no notebook source: no code cell input, no editor, no code (the markdown renders)
        assert page2.get_by_role("heading", name="Squares").is_visible()
        code_inputs = ".jp-CodeCell .jp-InputArea, .jp-InputArea-editor, .cm-editor, .CodeMirror"
        assert page2.locator(code_inputs).count() == 0
        assert "slider.observe" not in page2.content()
        handle = page2.locator(".widget-slider .noUi-handle, .widget-slider input").first
        handle.click()
        for _ in range(2):
            page2.keyboard.press("ArrowRight")
        page2.wait_for_function(
            "() => document.querySelector('.dsml-result').textContent === 'total: 35'",
            timeout=30_000,
        )
    finally:
        # what the stakeholder saw last, also when it was not the app
        page2.screenshot(path=str(SCREENSHOTS / "lab-publish-viewer.png"))
        page2.context.close()


def test_publishing_the_notebook_again_makes_a_new_version_of_its_app(
    author: Author, platform: Platform
) -> None:
    r = author.server.get("dsml/api/apps/for", params={"path": NOTEBOOK})
    assert r.status_code == 200, r.text
    existing = r.json()
    assert existing is not None and existing["app"]["title"] == TITLE
    assert existing["latest_version"] == 1
    page = author.page
    # an unsaved change (a new cell from the toolbar) is saved before publishing
    dialog = open_publish_dialog(page, platform, add_cell=True)
    text = dialog.inner_text()
    assert f"This notebook is published as {TITLE} (version 1): publishing makes version 2" in text
    assert "It is shared with group stakeholders" in text
    assert dialog.get_by_label("Title").input_value() == TITLE

    with page.expect_response(is_publish, timeout=180_000) as answer:
        dialog.get_by_role("button", name="Publish", exact=True).click()
    assert answer.value.status == 201, answer.value.text()
    body = answer.value.json()
    assert body["version"]["version"] == 2
    assert body["app"]["slug"] == existing["app"]["slug"]
    assert json.loads(answer.value.request.post_data)["slug"] == existing["app"]["slug"]
    done = page.locator(".jp-Dialog").filter(has_text="is published (version 2)")
    done.wait_for(timeout=60_000)
    assert done.locator(".dsml-Publish-link a").inner_text().strip() == body["url"]
    done.get_by_role("button", name="Close").click()
    saved = author.server.get(f"api/contents/{NOTEBOOK}").json()
    assert len(saved["content"]["cells"]) == 3
    assert body["version"]["sha256"] != existing["version"]["sha256"]


def test_a_refused_share_shows_the_services_message(author: Author, platform: Platform) -> None:
    r = author.server.post(
        "dsml/api/apps/publish",
        json={"path": NOTEBOOK, "title": f"Nobody {SUFFIX}", "share_users": [f"nobody-{SUFFIX}"]},
    )
    assert r.status_code == 400, r.text
    assert f"nobody-{SUFFIX}" in r.json()["message"]
    # and in the dialog, as a person sees it
    page = author.page
    page.goto(f"{platform.url}/user/scientist/lab/tree/{FOLDER}")
    entry = page.locator(".jp-DirListing-item").filter(
        has=page.locator(".jp-DirListing-itemText", has_text=f"slider-{SUFFIX}.ipynb")
    )
    entry.wait_for(timeout=120_000)
    entry.click(button="right")
    page.get_by_role("menuitem", name="Publish as app…").click()
    dialog = page.locator(".jp-Dialog")
    dialog.get_by_label("Title").wait_for(timeout=60_000)
    dialog.get_by_label("Title").fill(f"Nobody {SUFFIX}")
    dialog.get_by_label("Share with users (comma separated)").fill(f"nobody-{SUFFIX}")
    dialog.get_by_role("button", name="Publish", exact=True).click()
    error = page.locator(".jp-Dialog").filter(has_text="Publishing failed (HTTP 400)")
    error.wait_for(timeout=60_000)
    assert f"nobody-{SUFFIX}" in error.inner_text()
    error.get_by_role("button", name="Close").click()


def test_too_many_named_files_are_refused_before_anything_is_sent(author: Author) -> None:
    folder = f"{FOLDER}/many"
    author.put(folder, {"type": "directory"})
    for i in range(21):
        author.put(f"{folder}/part-{i}.txt", {"type": "file", "format": "text", "content": "x"})
    code = "\n".join(f'open("part-{i}.txt")' for i in range(21))
    author.put(
        f"{folder}/many.ipynb", {"type": "notebook", "format": "json", "content": notebook(code)}
    )
    r = author.server.post(
        "dsml/api/apps/publish", json={"path": f"{folder}/many.ipynb", "title": f"Many {SUFFIX}"}
    )
    assert r.status_code == 413, r.text
    assert "names more than 20 files" in r.json()["message"]
    big = base64.b64encode(b"\0" * (21 * 1024 * 1024)).decode()
    author.put(f"{folder}/big.bin", {"type": "file", "format": "base64", "content": big})
    author.put(
        f"{folder}/big.ipynb",
        {"type": "notebook", "format": "json", "content": notebook('open("big.bin", "rb")')},
    )
    r = author.server.post(
        "dsml/api/apps/publish", json={"path": f"{folder}/big.ipynb", "title": f"Big {SUFFIX}"}
    )
    assert r.status_code == 413, r.text
    assert "the limit is 20,971,520" in r.json()["message"]
    r = author.server.get("dsml/api/apps/environments", params={"path": f"{folder}/big.ipynb"})
    assert r.status_code == 200, r.text
    assert r.json()["default"] == "datascience"
    assert {e["name"] for e in r.json()["environments"]} == {"datascience", "python-minimal"}
