"""JupyterLab's Create Job dialog, driven in Chromium as a person uses it, on the scheduler service.

Right-click a notebook in the file browser, "Create Job": the Environment list shows the curated
environments with the notebook's own one pre-selected, "Run job with input folder" takes the
notebook's folder along (read by the user's own server), and Create starts a run that succeeds.
The input folder reader and the environment names are also checked on real folders, in-process.
"""

from __future__ import annotations

import base64
import json
import os
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from test_labscheduler import Lab
from test_platform import login

from dsml.lab.scheduler.inputs import list_input_folder, read_input_folder
from dsml.lab.scheduler.mapping import ServiceError, environment_name, page_path

from conftest import ENVIRONMENTS, Platform, hub_token

SUFFIX = uuid.uuid4().hex[:6]
MINIMAL_FOLDER = f"minimal-{SUFFIX}"
SCREENSHOT = Path("/tmp/lab-create-job.png")
SERVICE_ENVIRONMENTS = [
    {"name": "python-minimal", "display_name": "Python 3.11 (python-minimal)",
     "kernel": "dsml-python-minimal"},
    {"name": "datascience", "display_name": "Python 3.11 (datascience)",
     "kernel": "dsml-datascience"},
]  # fmt: skip


def tiny_notebook(kernel: str, code: str) -> dict[str, Any]:
    """A one-cell notebook whose kernelspec names `kernel`."""
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": kernel, "display_name": kernel, "language": "python"}},
        "cells": [
            {"cell_type": "code", "id": "c1", "metadata": {}, "source": code, "outputs": [],
             "execution_count": None}
        ],
    }  # fmt: skip


# the reader and the names, on real folders (no platform needed)


def test_input_folder_is_read_without_hidden_files_symlinks_or_the_notebook(tmp_path: Path) -> None:
    root = tmp_path / "home"
    folder = root / "project"
    (folder / "data" / "raw").mkdir(parents=True)
    (folder / "report.ipynb").write_text("{}")
    (folder / "helpers.py").write_text("X = 1\n")
    (folder / "data" / "sales.csv").write_bytes(b"a,b\n1,2\n")
    (folder / "data" / "raw" / "blob.bin").write_bytes(bytes(range(256)))
    (folder / ".env").write_text("SECRET=1")
    (folder / ".git").mkdir()
    (folder / ".git" / "config").write_text("x")
    (folder / "data" / ".cache").mkdir()
    (folder / "data" / ".cache" / "x.csv").write_text("x")
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "helpers.cpython-311.pyc").write_bytes(b"\0")
    (root / "elsewhere.txt").write_text("outside")
    (folder / "linked.txt").symlink_to(root / "elsewhere.txt")
    (folder / "linked-dir").symlink_to(root)
    os.mkfifo(folder / "pipe")

    files = read_input_folder(str(root), "project/report.ipynb")
    assert [f["path"] for f in files] == ["data/raw/blob.bin", "data/sales.csv", "helpers.py"]
    by_path = {f["path"]: base64.b64decode(f["content_base64"]) for f in files}
    assert by_path["data/raw/blob.bin"] == bytes(range(256))
    assert by_path["data/sales.csv"] == b"a,b\n1,2\n"
    # a notebook at the root takes the root's files, the project folder's among them
    (root / "top.ipynb").write_text("{}")
    paths = [p for p, _, _ in list_input_folder(str(root), "top.ipynb")]
    assert "elsewhere.txt" in paths and "project/helpers.py" in paths and "top.ipynb" not in paths


def test_input_folder_limits_are_refused_with_the_rule(tmp_path: Path) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(4):
        (folder / f"part-{i}.csv").write_text("x" * 100)
    assert len(read_input_folder(str(tmp_path), "many/nb.ipynb", max_files=4)) == 4
    with pytest.raises(ServiceError) as e:
        read_input_folder(str(tmp_path), "many/nb.ipynb", max_files=3)
    assert e.value.status == 413
    assert "more than 3 files" in e.value.message and "/many" in e.value.message
    with pytest.raises(ServiceError) as e:
        read_input_folder(str(tmp_path), "many/nb.ipynb", max_bytes=350)
    assert e.value.status == 413 and "the limit for a job's input files" in e.value.message
    with pytest.raises(ServiceError) as e:
        read_input_folder(str(tmp_path / "many"), "../elsewhere/nb.ipynb")
    assert e.value.status == 400 and "outside this server's root folder" in e.value.message


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        ("datascience", "datascience"),
        ("Python 3.11 (datascience)", "datascience"),
        ("dsml-datascience", "datascience"),
        ("dsml-python-minimal--0123456789ab", "python-minimal"),
        ("python 3.11 (PYTHON-MINIMAL)", "python-minimal"),
        ("no-such-env", None),
        ("dsml-no-such-env", None),
        ("", None),
    ],
)
def test_what_the_dialog_sends_maps_to_the_service_name(sent: str, expected: str | None) -> None:
    assert environment_name(sent, SERVICE_ENVIRONMENTS) == expected


@pytest.mark.parametrize(
    ("referer", "expected"),
    [
        ("http://h/user/sam/lab/tree/shared_notebooks", "shared_notebooks"),
        ("http://h/user/sam/lab/tree/a%20b/c.ipynb", "a b/c.ipynb"),
        ("http://h/user/sam/lab/workspaces/w1/tree/x/y.ipynb?reset", "x/y.ipynb"),
        ("http://h/user/sam/notebooks/n.ipynb", "n.ipynb"),
        ("http://h/user/sam/lab", None),
        ("http://h/user/sam/lab/tree/../../etc", None),
        ("http://h/user/other/lab/tree/x.ipynb", None),
        (None, None),
    ],
)
def test_page_path_from_the_referer(referer: str | None, expected: str | None) -> None:
    assert page_path(referer, "/user/sam/") == expected


# the dialog in Chromium, on the real platform


class Scientist(Lab):
    """The scientist's Chromium page (JupyterLab) and API clients with their token."""

    def __init__(self, platform: Platform, page: Any):
        super().__init__(platform, hub_token(platform, "scientist"))
        self.page = page

    def put_notebook(self, path: str, notebook: dict[str, Any]) -> None:
        """Save a notebook in the scientist's home through their server."""
        r = self.server.put(
            f"api/contents/{path}", json={"type": "notebook", "format": "json", "content": notebook}
        )
        assert r.status_code in (200, 201), r.text

    def mkdir(self, path: str) -> None:
        """Make a folder in the scientist's home through their server."""
        r = self.server.put(f"api/contents/{path}", json={"type": "directory"})
        assert r.status_code in (200, 201), r.text

    def open_create_job(self, folder: str, notebook: str) -> Any:
        """In a fresh JupyterLab, open `folder` in the file browser, right-click `notebook`,
        "Create Job"; return the Environment list once it shows a value."""
        page = self.page
        page.goto(self.platform.url + "/user/scientist/lab?reset")
        item = self.listed(folder)
        item.wait_for(timeout=120_000)
        item.dblclick()
        entry = self.listed(notebook)
        entry.wait_for(timeout=60_000)
        page.wait_for_url(f"**/lab/tree/{folder}", timeout=30_000)
        entry.click(button="right")
        page.get_by_role("menuitem", name=re.compile(r"^Create Job")).click()
        page.get_by_role("heading", name="Create Job").wait_for(timeout=60_000)
        # MUI's Select: a button labelled by the field's label and the value it shows
        environment = page.get_by_role("button", name=re.compile(r"^Environment\b"))
        environment.wait_for(timeout=60_000)
        return environment

    def listed(self, name: str) -> Any:
        """The file browser's entry named `name`."""
        exact = re.compile(f"^{re.escape(name)}$")
        return self.page.locator(".jp-DirListing-item").filter(
            has=self.page.locator(".jp-DirListing-itemText", has_text=exact)
        )


@pytest.fixture(scope="module")
def scientist(browser, platform: Platform):
    """The scientist signed in, their JupyterLab up, a python-minimal notebook in a folder."""
    page = login(browser, platform, "scientist")
    # people land on the portal's home after login; JupyterLab is a click away
    page.wait_for_url("**/services/portal/", timeout=30_000)
    page.goto(platform.url + "/hub/spawn")
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.wait_for_url("**/user/scientist/lab**", timeout=120_000)
    page.wait_for_selector("#jp-main-dock-panel", timeout=120_000)
    person = Scientist(platform, page)
    person.mkdir(MINIMAL_FOLDER)
    person.put_notebook(
        f"{MINIMAL_FOLDER}/hello-minimal.ipynb",
        tiny_notebook("dsml-python-minimal", "import sys\nprint('hello from', sys.prefix)"),
    )
    yield person
    page.context.close()


def pick(page: Any, environment: Any, name: str) -> list[str]:
    """Open the Environment list, pick `name`; return the names the list offered."""
    environment.click()
    options = page.get_by_role("listbox").get_by_role("option")
    options.first.wait_for(timeout=30_000)
    offered = [text.strip() for text in options.all_inner_texts()]
    page.get_by_role("option", name=name, exact=True).click()
    return offered


def create(page: Any) -> tuple[dict[str, Any], Any]:
    """Press Create; the JSON the page sent to /scheduler/jobs and the answer it got."""

    def is_create(r: Any) -> bool:
        return r.request.method == "POST" and "/user/scientist/scheduler/jobs" in r.url

    with page.expect_response(is_create, timeout=120_000) as answer:
        page.get_by_role("button", name="Create", exact=True).click()
    response = answer.value
    return json.loads(response.request.post_data), response


def test_sales_report_with_its_input_folder_from_the_dialog(scientist: Scientist) -> None:
    page = scientist.page
    environment = scientist.open_create_job("shared_notebooks", "sales-report.ipynb")
    # the notebook names dsml-datascience: pre-selected, and picked again as a person might
    page.wait_for_function(
        "el => el.textContent.trim() === 'datascience'", arg=environment.element_handle()
    )
    offered = pick(page, environment, "datascience")
    assert sorted(offered) == sorted(ENVIRONMENTS)
    assert environment.inner_text().strip() == "datascience"
    folder = page.get_by_label("Run job with input folder")
    folder.check()
    page.screenshot(path=str(SCREENSHOT))

    sent, response = create(page)
    assert sent["input_uri"] == "shared_notebooks/sales-report.ipynb"
    assert sent["runtime_environment_name"] == "datascience"
    assert sent["package_input_folder"] is True
    answer = response.json()
    assert response.status == 200, answer
    job_id = answer["job_id"]
    ended = scientist.wait_for_job(job_id)
    assert ended["status"] == "COMPLETED", ended
    run = scientist.service.get(f"runs/{job_id.removeprefix('run-')}").json()
    assert run["environment"] == "datascience" and run["state"] == "succeeded"
    if ended.get("packaged_files"):
        assert "data/sales.csv" in ended["packaged_files"]
        assert not any(p.split("/")[-1].startswith(".") for p in ended["packaged_files"])
    # the Notebook Jobs list the dialog switched to shows the run completed
    page.get_by_role("button", name="Reload").click()
    page.get_by_text("Completed").first.wait_for(timeout=60_000)


def test_python_minimal_job_without_input_folder_from_the_dialog(scientist: Scientist) -> None:
    page = scientist.page
    environment = scientist.open_create_job(MINIMAL_FOLDER, "hello-minimal.ipynb")
    page.wait_for_function(
        "el => el.textContent.trim() === 'python-minimal'", arg=environment.element_handle()
    )
    assert not page.get_by_label("Run job with input folder").is_checked()

    sent, response = create(page)
    assert sent["input_uri"] == f"{MINIMAL_FOLDER}/hello-minimal.ipynb"
    assert sent["runtime_environment_name"] == "python-minimal"
    assert not sent.get("package_input_folder")
    assert response.status == 200, response.text()
    job_id = response.json()["job_id"]
    ended = scientist.wait_for_job(job_id)
    assert ended["status"] == "COMPLETED", ended
    run = scientist.service.get(f"runs/{job_id.removeprefix('run-')}").json()
    assert run["environment"] == "python-minimal"
    job = scientist.service.get(f"jobs/{run['job_id']}").json()
    assert job["environment"] == "python-minimal" and job["notebook_name"] == "hello-minimal.ipynb"


@pytest.mark.parametrize("sent", ["Python 3.11 (python-minimal)", "dsml-python-minimal"])
def test_display_and_kernel_names_reach_the_service_as_its_name(
    scientist: Scientist, sent: str
) -> None:
    r = scientist.scheduler.post(
        "jobs",
        json={
            "name": f"named-{SUFFIX}-{sent.split()[0]}",
            "input_uri": f"{MINIMAL_FOLDER}/hello-minimal.ipynb",
            "runtime_environment_name": sent,
            "output_formats": ["ipynb"],
        },
    )
    assert r.status_code == 200, r.text
    run = scientist.service.get(f"runs/{r.json()['job_id'].removeprefix('run-')}").json()
    assert run["environment"] == "python-minimal"


def test_an_input_folder_over_the_file_limit_is_refused_naming_it(scientist: Scientist) -> None:
    folder = f"crowded-{SUFFIX}"
    scientist.mkdir(folder)
    scientist.put_notebook(f"{folder}/crowded.ipynb", tiny_notebook("dsml-python-minimal", "1"))
    for i in range(501):
        r = scientist.server.put(
            f"api/contents/{folder}/part-{i:03}.txt",
            json={"type": "file", "format": "text", "content": str(i)},
        )
        assert r.status_code in (200, 201), r.text
    r = scientist.scheduler.post(
        "jobs",
        json={
            "name": f"crowded-{SUFFIX}",
            "input_uri": f"{folder}/crowded.ipynb",
            "runtime_environment_name": "python-minimal",
            "output_formats": ["ipynb"],
            "package_input_folder": True,
        },
    )
    assert r.status_code == 413, r.text
    message = r.json()["message"]
    assert f"the input folder /{folder} holds more than 500 files" in message
    assert "a folder of their own" in message


def test_the_page_notebooks_environment_is_listed_first(scientist: Scientist) -> None:
    lab = scientist.platform.url + "/user/scientist/lab"
    for page, first in [
        (f"{lab}/tree/{MINIMAL_FOLDER}", "python-minimal"),
        (f"{lab}/tree/{MINIMAL_FOLDER}/hello-minimal.ipynb", "python-minimal"),
        (f"{lab}/tree/shared_notebooks/sales-report.ipynb", "datascience"),
        (f"{lab}/tree/shared_notebooks", "datascience"),
    ]:
        r = scientist.scheduler.get("runtime_environments", headers={"Referer": page})
        assert r.status_code == 200, r.text
        listed = r.json()
        assert [env["name"] for env in listed][0] == first, page
        assert sorted(env["name"] for env in listed) == sorted(ENVIRONMENTS)
        assert all(env["label"] == env["name"] for env in listed)
        assert all(env["metadata"]["display_name"] in env["description"] for env in listed)


def test_a_job_definition_takes_its_input_folder_along(scientist: Scientist) -> None:
    name = f"sales-nightly-{SUFFIX}"
    r = scientist.scheduler.post(
        "job_definitions",
        json={
            "name": name,
            "input_uri": "shared_notebooks/sales-report.ipynb",
            "runtime_environment_name": "Python 3.11 (datascience)",
            "output_formats": ["ipynb"],
            "schedule": "0 6 * * *",
            "timezone": "UTC",
            "package_input_folder": True,
        },
    )
    assert r.status_code == 200, r.text
    definition = r.json()["job_definition_id"]
    described = scientist.scheduler.get(f"job_definitions/{definition}").json()
    assert described["runtime_environment_name"] == "datascience"
    assert "data/sales.csv" in described["packaged_files"], described
    # a new notebook for the definition takes its own folder along
    r = scientist.scheduler.patch(
        f"job_definitions/{definition}",
        json={"input_uri": "shared_notebooks/churn-model.ipynb"},
    )
    assert r.status_code == 204, r.text
    described = scientist.scheduler.get(f"job_definitions/{definition}").json()
    assert described["input_filename"] == "churn-model.ipynb"
    assert "data/sales.csv" in described["packaged_files"], described
    assert scientist.scheduler.delete(f"job_definitions/{definition}").status_code == 204
