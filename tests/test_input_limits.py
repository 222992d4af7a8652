"""Input limits of every service: each hostile input is a one-line 4xx and nothing is stored.

What the other test files already prove is not repeated here: bodies over the limit
(test_scheduler_hardening.py, test_apps.py, test_portal.py), a run whose output is over the
limit (test_scheduler_api.py: it fails as `OutputTooLarge`, no output kept), bad input files,
bad publish files, slugs and thumbnails (test_apps.py) and bad training entries
(test_portal_training.py). This file adds the rest of issue 12's list: notebook size,
parameter size and depth, names (unicode, path separators, HTML, control characters, 10 kB),
non-notebook uploads and notebooks whose JSON is valid but whose cells are not. After each
refusal the test reads the service's listing again and finds it unchanged.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import Platform, hub_token

NOTEBOOKS = Path(__file__).parent / "notebooks"
TEN_KB = "x" * 10_240
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def notebook(cells: list[Any] | None = None) -> dict[str, Any]:
    """A valid nbformat 4 notebook on the python-minimal kernel (its cells replaced if given)."""
    nb = json.loads((NOTEBOOKS / "typed_params.ipynb").read_text())
    nb["metadata"]["kernelspec"] = {
        "name": "dsml-python-minimal",
        "display_name": "python-minimal",
        "language": "python",
    }
    if cells is not None:
        nb["cells"] = cells
    return nb


BAD_CELLS = [
    pytest.param([{"cell_type": "bogus", "metadata": {}, "source": "x"}], id="bogus-type"),
    pytest.param([{"cell_type": "code", "metadata": {}, "source": 5, "outputs": []}], id="int-src"),
    pytest.param(
        [{"cell_type": "code", "metadata": {}, "source": ["a", 1], "outputs": []}], id="mixed-src"
    ),
    pytest.param([{"cell_type": "code", "metadata": {}, "outputs": []}], id="no-source"),
    pytest.param(["print(1)"], id="cell-is-a-string"),
    pytest.param([None], id="cell-is-null"),
    pytest.param(
        [{"cell_type": "code", "metadata": {}, "source": "x", "outputs": "none"}],
        id="outputs-not-list",
    ),
    pytest.param(
        [{"cell_type": "code", "metadata": [], "source": "x", "outputs": []}], id="metadata-list"
    ),
]
"""Notebooks whose JSON parses but whose cells are not notebook cells."""

NOT_NOTEBOOKS = [
    pytest.param(base64.b64encode(PNG).decode(), id="png-base64"),
    pytest.param(PNG.decode("latin-1"), id="png-bytes-as-text"),
    pytest.param("name,value\na,1\n", id="csv"),
    pytest.param("<html><body>hi</body></html>", id="html"),
    pytest.param([1, 2, 3], id="json-list"),
    pytest.param({"hello": "world"}, id="json-object"),
    pytest.param({"nbformat": 3, "worksheets": []}, id="nbformat-3"),
]
"""Uploads that are not notebooks at all."""


def one_line(r: httpx.Response, status: int | tuple[int, ...], *words: str) -> str:
    """The response is a JSON error of `status` whose one-line message holds `words`."""
    statuses = (status,) if isinstance(status, int) else status
    assert r.status_code in statuses, (r.status_code, r.text[:500])
    body = r.json()
    assert set(body) == {"status", "message"} and body["status"] == r.status_code, body
    message = body["message"]
    assert message and "\n" not in message and "Traceback" not in message, message
    assert len(message) < 1000, f"the message is {len(message)} characters long"
    for word in words:
        assert word in message, (word, message)
    return message


@pytest.fixture(scope="module")
def clients(platform: Platform) -> Iterator[dict[str, httpx.Client]]:
    """The scientist's clients of the three services' APIs (one hub token)."""
    token = hub_token(platform, "scientist")
    made = {
        service: httpx.Client(
            base_url=f"{platform.url}/services/{service}/api/",
            headers={"Authorization": f"token {token}"},
            timeout=60,
        )
        for service in ("scheduler", "apps", "portal")
    }
    yield made
    for client in made.values():
        client.close()


# --- scheduler -----------------------------------------------------------------------------


def job_names(api: httpx.Client) -> list[tuple[int, str]]:
    """Every job of the caller (id, name): what a refusal must leave as it was."""
    jobs, cursor = [], None
    while True:
        page = api.get("jobs", params={"limit": 500, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        jobs += [(j["id"], j["name"]) for j in page.json()["jobs"]]
        cursor = page.json().get("next_cursor")
        if not cursor:
            return jobs


def job_body(**fields: Any) -> dict[str, Any]:
    """A valid job request, with `fields` replaced."""
    body = {
        "name": "limits",
        "notebook": notebook(),
        "notebook_name": "typed_params.ipynb",
        "environment": "python-minimal",
        "retries": 0,
    }
    body.update(fields)
    return body


@pytest.fixture(scope="module")
def scheduler(clients: dict[str, httpx.Client]) -> httpx.Client:
    return clients["scheduler"]


def refused_job(scheduler: httpx.Client, body: dict[str, Any], status, *words: str) -> str:
    """POST a job that must be refused; the caller's jobs are the same afterwards."""
    before = job_names(scheduler)
    message = one_line(scheduler.post("jobs", json=body), status, *words)
    assert job_names(scheduler) == before
    return message


def test_a_notebook_over_the_size_limit_is_a_413(scheduler: httpx.Client) -> None:
    # the default max_notebook_bytes is 5 MB, the request limit 8 MB: the notebook's own limit
    big = notebook()
    big["cells"].append({"cell_type": "markdown", "metadata": {}, "source": "x" * 6_000_000})
    refused_job(scheduler, job_body(notebook=big), 413, "notebook is", "the limit is")


@pytest.mark.parametrize("cells", BAD_CELLS)
def test_a_notebook_with_cells_that_are_not_cells_is_a_400(
    scheduler: httpx.Client, cells: list[Any]
) -> None:
    refused_job(scheduler, job_body(notebook=notebook(cells)), 400, "cell 1")


@pytest.mark.parametrize("upload", NOT_NOTEBOOKS)
def test_a_non_notebook_upload_is_a_400(scheduler: httpx.Client, upload: Any) -> None:
    refused_job(scheduler, job_body(notebook=upload), 400, "notebook")


@pytest.mark.parametrize(
    "name, words",
    [
        (TEN_KB, "at most 255"),
        ("", "non-empty"),
        ("   ", "non-empty"),
        ("nul\x00in name", "control characters"),
        ("line\nbreak", "control characters"),
        ("bell\x07", "control characters"),
        (["a list"], "string"),
    ],
)
def test_bad_job_names_are_a_400(scheduler: httpx.Client, name: Any, words: str) -> None:
    refused_job(scheduler, job_body(name=name), 400, "name", words)


@pytest.mark.parametrize(
    "name",
    [
        "../../etc/passwd.ipynb",
        "a/b.ipynb",
        "a\\b.ipynb",
        "..ipynb",
        ".hidden.ipynb",
        "nul\x00.ipynb",
        "x" * 300 + ".ipynb",
        "notebook.py",
    ],
)
def test_bad_notebook_names_are_a_400(scheduler: httpx.Client, name: str) -> None:
    refused_job(scheduler, job_body(notebook_name=name), 400, "notebook_name")


@pytest.mark.parametrize(
    "name",
    [
        "Ventes été — 東京 📈",
        "reports/daily/../../etc/passwd",
        "C:\\Windows\\system32",
        "<b>bold</b> & 'quotes' \"too\"",
        "\u202eRTL override",
        "x" * 255,
    ],
)
def test_display_names_are_kept_as_text(
    scheduler: httpx.Client, platform: Platform, name: str
) -> None:
    """Unicode, slashes and markup are a job's name, not a path: stored as sent, no file made."""
    r = scheduler.post("jobs", json=job_body(name=name))
    assert r.status_code == 201, r.text
    job = r.json()
    try:
        assert scheduler.get(f"jobs/{job['id']}").json()["name"] == name
        root = platform.datadir.root
        assert not (root / "etc").exists()
        assert not list((root / "scheduler").rglob("*system32*"))
    finally:
        scheduler.delete(f"jobs/{job['id']}")


@pytest.fixture(scope="module")
def typed_job(scheduler: httpx.Client) -> Iterator[dict[str, Any]]:
    r = scheduler.post("jobs", json=job_body(name="parameter limits"))
    assert r.status_code == 201, r.text
    yield r.json()
    scheduler.delete(f"jobs/{r.json()['id']}")


def nested(depth: int) -> list[Any]:
    """A list nested `depth` levels deep."""
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize(
    "parameters, words",
    [
        ({"tags": ["x" * 1024] * 1024}, ("parameters are", "bytes", "the limit is")),
        ({"label": "y" * 600_000}, ("parameters are", "bytes", "the limit is")),
        ({"tags": nested(40)}, ("'tags'", "nested more than", "the limit is")),
        ({"label": 5}, ("'label'", "str")),
        ({"nope": 1}, ("unknown parameter",)),
        ({"scheduled_for": "2026-01-01"}, ("set by the scheduler",)),
    ],
)
def test_bad_run_parameters_are_a_400_and_no_run_is_made(
    scheduler: httpx.Client, typed_job: dict[str, Any], parameters: dict, words: tuple
) -> None:
    runs = f"jobs/{typed_job['id']}/runs"
    before = scheduler.get(runs).json()["total"]
    one_line(scheduler.post(runs, json={"parameters": parameters}), 400, *words)
    assert scheduler.get(runs).json()["total"] == before


def test_json_nested_deeper_than_the_parser_goes_is_a_400(
    clients: dict[str, httpx.Client], typed_job: dict[str, Any]
) -> None:
    """Thousands of `[`: Python's JSON reader recurses per level; a 400, never a 500."""
    deep = b'{"parameters": {"tags": ' + b"[" * 5000 + b"]" * 5000 + b"}}"
    json_type = {"Content-Type": "application/json"}
    for service, path in (
        ("scheduler", f"jobs/{typed_job['id']}/runs"),
        ("apps", "apps"),
        ("portal", "env-requests"),
    ):
        r = clients[service].post(path, content=deep, headers=json_type)
        one_line(r, 400, "nested too deeply")


@pytest.mark.parametrize(
    "parameters, words",
    [
        ({"tags": ["x" * 1024] * 1024}, "parameters are"),
        ({"tags": nested(40)}, "nested"),
    ],
)
def test_bad_job_parameters_are_a_400(
    scheduler: httpx.Client, parameters: dict, words: str
) -> None:
    refused_job(scheduler, job_body(parameters=parameters), 400, words)


def test_parameters_at_the_limits_are_taken(
    scheduler: httpx.Client, typed_job: dict[str, Any]
) -> None:
    """A few levels of nesting and tens of kilobytes are ordinary parameters."""
    r = scheduler.post(
        f"jobs/{typed_job['id']}/runs",
        json={"parameters": {"tags": [nested(8), "z" * 50_000], "label": "été 📈"}},
    )
    assert r.status_code == 201, r.text
    scheduler.post(f"runs/{r.json()['id']}/cancel")


# --- apps ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def apps(clients: dict[str, httpx.Client]) -> httpx.Client:
    return clients["apps"]


def owned_apps(api: httpx.Client) -> list[tuple[str, str, int]]:
    """The caller's apps (slug, title, current version)."""
    r = api.get("apps", params={"owned": "1"})
    assert r.status_code == 200, r.text
    return sorted((a["slug"], a["title"], a.get("current_version") or 0) for a in r.json()["apps"])


def bundle_files(platform: Platform) -> list[str]:
    """The apps service's bundles (`<sha256>.tar.gz`, one per stored notebook version)."""
    root = platform.datadir.root / "apps"
    assert root.is_dir(), root
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.tar.gz"))


def refused_publish(
    apps: httpx.Client, platform: Platform, body: dict[str, Any], status, *words: str
) -> str:
    """Publish a request that must be refused: no app, no version, no bundle file stored."""
    before, files = owned_apps(apps), bundle_files(platform)
    full = {"notebook": notebook(), "title": "Limits", "slug": "limits-app", **body}
    message = one_line(apps.post("apps", json=full), status, *words)
    assert owned_apps(apps) == before
    assert bundle_files(platform) == files
    return message


@pytest.mark.parametrize("cells", BAD_CELLS)
def test_publishing_cells_that_are_not_cells_is_a_400(
    apps: httpx.Client, platform: Platform, cells: list[Any]
) -> None:
    refused_publish(apps, platform, {"notebook": notebook(cells)}, 400, "cell 1")


@pytest.mark.parametrize("upload", NOT_NOTEBOOKS)
def test_publishing_a_non_notebook_is_a_400(
    apps: httpx.Client, platform: Platform, upload: Any
) -> None:
    refused_publish(apps, platform, {"notebook": upload}, 400, "notebook")


@pytest.mark.parametrize(
    "fields, words",
    [
        ({"title": TEN_KB}, "title"),
        ({"title": "tab\x00nul"}, "title"),
        ({"title": "two\nlines"}, "title"),
        ({"description": TEN_KB}, "description"),
        ({"description": "nul\x00"}, "description"),
        ({"slug": "ok-slug\n"}, "slug"),
        ({"slug": "../../etc"}, "slug"),
        ({"slug": "a/b"}, "slug"),
        ({"slug": "été"}, "slug"),
        ({"slug": "<script>"}, "slug"),
        ({"slug": TEN_KB}, "slug"),
        ({"notebook_path": TEN_KB}, "notebook_path"),
        ({"notebook_path": "a\x00b.ipynb"}, "notebook_path"),
        ({"files": {"a\x00b.csv": base64.b64encode(b"1").decode()}}, "file name"),
        ({"files": {"a\\b.csv": base64.b64encode(b"1").decode()}}, "file name"),
        ({"files": {TEN_KB: base64.b64encode(b"1").decode()}}, "file name"),
        ({"files": {"ok.csv": 7}}, "ok.csv"),
        ({"files": ["ok.csv"]}, "files"),
    ],
)
def test_bad_publish_fields_are_a_400_and_nothing_is_stored(
    apps: httpx.Client, platform: Platform, fields: dict, words: str
) -> None:
    refused_publish(apps, platform, fields, 400, words)


# --- portal --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def portal(clients: dict[str, httpx.Client]) -> httpx.Client:
    return clients["portal"]


def my_requests(api: httpx.Client) -> list[tuple[int, str]]:
    r = api.get("env-requests", params={"limit": 500})
    assert r.status_code == 200, r.text
    return [(q["id"], q["package"]) for q in r.json()["requests"]]


@pytest.mark.parametrize(
    "body, words",
    [
        ({"package": TEN_KB}, "package"),
        ({"package": "<script>window.__pwned=1</script>"}, "package"),
        ({"package": "x==<img/src=x/onerror=window.__pwned=1>"}, "package"),
        ({"package": "../../etc/passwd"}, "package"),
        ({"package": "pandas\x00"}, "package"),
        ({"package": "пакет"}, "package"),
        ({"package": ["pandas"]}, "package"),
        ({"package": "polars", "reason": TEN_KB}, "reason"),
        ({"package": "polars", "reason": "nul\x00byte"}, "reason"),
        ({"package": "polars", "reason": 42}, "reason"),
        ({"package": "polars", "environment": "../datascience"}, "environment"),
    ],
)
def test_bad_package_requests_are_a_400_and_nothing_is_stored(
    portal: httpx.Client, body: dict, words: str
) -> None:
    before = my_requests(portal)
    full = {"environment": "datascience", **body}
    one_line(portal.post("env-requests", json=full), 400, words)
    assert my_requests(portal) == before


@pytest.mark.parametrize(
    "entry, words",
    [
        ({"notebook": "../../etc/passwd", "exercise": "01.1"}, "notebook"),
        ({"notebook": TEN_KB + ".ipynb", "exercise": "01.1"}, "notebook"),
        ({"notebook": "01-welcome-to-jupyterlab.ipynb", "exercise": TEN_KB}, "exercise"),
        ({"notebook": "01-welcome-to-jupyterlab.ipynb", "exercise": "<script>"}, "exercise"),
        ({"notebook": "01-welcome-to-jupyterlab.ipynb", "exercise": "01\x00"}, "exercise"),
        ({"notebook": "01-welcome-to-jupyterlab.ipynb", "exercise": "01.1\n"}, "exercise"),
        ({"notebook": "01-welcome-to-jupyterlab.ipynb\n", "exercise": "01.1"}, "notebook"),
        ({"notebook": "<img src=x onerror=1>.ipynb", "exercise": "01.1"}, "notebook"),
    ],
)
def test_bad_training_entries_are_a_400_and_nothing_is_stored(
    portal: httpx.Client, entry: dict, words: str
) -> None:
    before = portal.get("training/progress").json()
    one_line(portal.post("training/progress", json={**entry, "passed": True}), 400, words)
    assert portal.get("training/progress").json() == before
