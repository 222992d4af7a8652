"""Training progress through the portal: record an attempt, read mine, batches, admins' table.

Most tests talk to a portal process of their own (`python -m dsml.portal`, started here against
the session's hub), so its curriculum is a small fixture in a temporary folder
(`--PortalApp.training_dir`); the last one goes through the platform's own portal behind the
proxy with a token like the one a learner's kernel holds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from dsml.portal.training import read_curriculum
from dsml.scopes import USAGE_ADMIN

from conftest import ROOT, Platform, free_port, hub_token

CURRICULUM = {
    "modules": [
        {
            "number": 1,
            "notebook": "01-welcome-to-jupyterlab.ipynb",
            "title": "Welcome to JupyterLab",
            "minutes": 20,
            "exercises": ["01.1", "01.2"],
        },
        {
            "number": 2,
            "notebook": "02-data-with-pandas.ipynb",
            "title": "Data with pandas",
            "minutes": 20,
            "exercises": ["02.1", "02.2", "02.3"],
        },
    ]
}
WELCOME = "01-welcome-to-jupyterlab.ipynb"
PANDAS = "02-data-with-pandas.ipynb"
GOOD = {"notebook": WELCOME, "exercise": "01.1", "passed": True}
"""A valid attempt, which the bad-input cases spoil one field at a time."""


@pytest.fixture(scope="module")
def portal_url(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A portal of our own on the session's hub, with the fixture curriculum."""
    base = tmp_path_factory.mktemp("own-portal")
    training = base / "training"
    training.mkdir()
    (training / "curriculum.json").write_text(json.dumps(CURRICULUM))
    port = free_port()
    prefix = "/services/portal/"
    env = {
        **os.environ,
        "JUPYTERHUB_SERVICE_NAME": "portal",
        "JUPYTERHUB_API_TOKEN": platform.admin_token,
        "JUPYTERHUB_API_URL": platform.url + "/hub/api",
        "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{port}",
        "JUPYTERHUB_SERVICE_PREFIX": prefix,
    }
    env.pop("DSML_PORTAL_DB_URL", None)
    log = base / "portal.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dsml.portal",
                f"--PortalApp.data_dir={base / 'data'}",
                f"--PortalApp.training_dir={training}",
                "--PortalApp.usage_poll_seconds=3600",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}{prefix}api/"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(url + "health", timeout=10)
                break
            except httpx.HTTPError as e:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"own portal did not start:\n{log.read_text()[-3000:]}"
                    ) from e
                time.sleep(0.3)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


@pytest.fixture(scope="module")
def tokens(platform: Platform) -> dict[str, str]:
    """Hub API tokens of the learner, an analyst and an admin."""
    return {name: hub_token(platform, name) for name in ("newcomer", "analyst", "admin")}


def call(url: str, token: str, method: str, path: str, **kwargs) -> httpx.Response:
    """One request to a portal API with a hub token."""
    headers = {"Authorization": f"token {token}", **kwargs.pop("headers", {})}
    return httpx.request(method, url + path, headers=headers, timeout=30, **kwargs)


def test_record_and_read_mine(portal_url: str, tokens: dict[str, str]) -> None:
    me = tokens["newcomer"]
    r = call(
        portal_url,
        me,
        "POST",
        "training/progress",
        json={
            "notebook": WELCOME,
            "exercise": "01.1",
            "passed": False,
        },
    )
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["user"] == "newcomer" and first["passed"] is False and first["attempts"] == 1
    r = call(
        portal_url,
        me,
        "POST",
        "training/progress",
        json={
            "notebook": WELCOME,
            "exercise": "01.1",
            "passed": True,
        },
    )
    assert r.json()["passed"] is True and r.json()["attempts"] == 2
    # a later failure does not take a pass back
    r = call(
        portal_url,
        me,
        "POST",
        "training/progress",
        json={
            "notebook": WELCOME,
            "exercise": "01.1",
            "passed": False,
            "timestamp": "2026-01-02T03:04:05Z",
        },
    )
    assert r.status_code == 201 and r.json()["passed"] is True and r.json()["attempts"] == 3
    assert r.json()["created"] == "2026-01-02T03:04:05Z"  # the earliest attempt

    mine = call(portal_url, me, "GET", "training/progress").json()
    assert mine["user"] == "newcomer"
    assert [
        (m["number"], m["exercises"], m["passed"], m["attempted"]) for m in mine["modules"]
    ] == [
        (1, 2, 1, 1),
        (2, 3, 0, 0),
    ]
    assert mine["modules"][0]["title"] == "Welcome to JupyterLab"
    assert mine["next"] == {"notebook": WELCOME, "number": 1, "title": "Welcome to JupyterLab"}
    assert [(e["exercise"], e["passed"], e["attempts"]) for e in mine["results"]] == [
        ("01.1", True, 3)
    ]


def test_a_batch_sends_an_offline_queue_in_one_call(
    portal_url: str, tokens: dict[str, str]
) -> None:
    me = tokens["newcomer"]
    queue = [
        {**GOOD, "exercise": "01.2", "timestamp": "2026-11-01T10:00:00Z"},
        {"notebook": PANDAS, "exercise": "02.1", "passed": False},
        {"notebook": PANDAS, "exercise": "02.1", "passed": True},
    ]
    r = call(portal_url, me, "POST", "training/progress", json={"results": queue})
    assert r.status_code == 201, r.text
    assert r.json() == {"recorded": 3}
    mine = call(portal_url, me, "GET", "training/progress").json()
    assert [(m["passed"], m["attempted"]) for m in mine["modules"]] == [(2, 2), (1, 1)]
    assert mine["next"]["notebook"] == PANDAS
    pandas = [e for e in mine["results"] if e["notebook"] == PANDAS]
    assert [(e["passed"], e["attempts"]) for e in pandas] == [(True, 2)]


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ({**GOOD, "notebook": "welcome.ipynb"}, "notebook"),
        ({**GOOD, "exercise": "a b"}, "exercise"),
        ({**GOOD, "exercise": "x" * 33}, "exercise"),
        ({**GOOD, "passed": "yes"}, "passed"),
        ({**GOOD, "timestamp": "soon"}, "timestamp"),
        ({**GOOD, "timestamp": "2999-01-01T00:00:00Z"}, "future"),
        ({**GOOD, "score": 3}, "score"),
        ({"results": []}, "results"),
        ({"results": [GOOD] * 501}, "500"),
        ({"results": [GOOD, {"notebook": WELCOME}]}, "results[1].exercise"),
        ({"results": "all"}, "results"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(
    portal_url: str, tokens: dict[str, str], body: dict, names: str
) -> None:
    r = call(portal_url, tokens["newcomer"], "POST", "training/progress", json=body)
    assert r.status_code == 400, r.text
    message = r.json()["message"]
    assert names in message and "\n" not in message, message


def test_bodies_that_are_not_json(portal_url: str, tokens: dict[str, str]) -> None:
    me = tokens["newcomer"]
    json_type = {"Content-Type": "application/json"}
    r = call(portal_url, me, "POST", "training/progress", content=b"[1, 2]", headers=json_type)
    assert r.status_code == 400
    text = {"Content-Type": "text/plain"}
    r = call(portal_url, me, "POST", "training/progress", content=b"passed", headers=text)
    assert r.status_code == 415


def test_learners_table_is_for_admins(portal_url: str, tokens: dict[str, str]) -> None:
    call(
        portal_url,
        tokens["analyst"],
        "POST",
        "training/progress",
        json={
            "notebook": WELCOME,
            "exercise": "01.1",
            "passed": True,
        },
    )
    r = call(portal_url, tokens["analyst"], "GET", "training/learners")
    assert r.status_code == 403 and USAGE_ADMIN in r.json()["message"]
    r = call(portal_url, tokens["analyst"], "GET", "training/progress", params={"user": "newcomer"})
    assert r.status_code == 403
    # asking for oneself by name is fine
    r = call(portal_url, tokens["analyst"], "GET", "training/progress", params={"user": "analyst"})
    assert r.status_code == 200 and r.json()["user"] == "analyst"

    r = call(portal_url, tokens["admin"], "GET", "training/learners")
    assert r.status_code == 200, r.text
    learners = {row["user"]: row for row in r.json()["learners"]}
    assert {"newcomer", "analyst"} <= set(learners)
    assert learners["analyst"]["passed"] == 1 and learners["analyst"]["exercises"] == 5
    assert learners["analyst"]["modules_done"] == 0 and learners["analyst"]["last"]
    newcomer = call(
        portal_url, tokens["admin"], "GET", "training/progress", params={"user": "newcomer"}
    ).json()
    assert newcomer["user"] == "newcomer" and newcomer["modules"][0]["passed"] >= 1


def test_a_service_token_records_nothing(portal_url: str, platform: Platform) -> None:
    r = call(
        portal_url,
        platform.admin_token,
        "POST",
        "training/progress",
        json={
            "notebook": WELCOME,
            "exercise": "01.1",
            "passed": True,
        },
    )
    assert r.status_code == 403 and "users" in r.json()["message"]


KERNEL_SCOPES = ["access:services!service=portal", "read:users:name!user"]
"""What a learner's kernel token holds that the portal needs (a server token has more)."""


def test_a_kernel_token_records_through_the_platform(platform: Platform) -> None:
    """A token with only what the portal needs of a server token, through the proxy."""
    me = hub_token(platform, "newcomer")
    r = httpx.post(
        f"{platform.url}/hub/api/users/newcomer/tokens",
        json={"note": "kernel", "scopes": KERNEL_SCOPES},
        headers={"Authorization": f"token {me}"},
    )
    assert r.status_code == 201, r.text
    kernel = r.json()["token"]
    api = platform.url + "/services/portal/api/"
    curriculum = read_curriculum(ROOT / "training")
    module = curriculum.modules[0] if curriculum.modules else None
    notebook = module.notebook if module else WELCOME
    exercise = module.exercises[0] if module and module.exercises else "01.1"
    r = call(
        api,
        kernel,
        "POST",
        "training/progress",
        json={
            "notebook": notebook,
            "exercise": exercise,
            "passed": True,
        },
    )
    assert r.status_code == 201, r.text
    mine = call(api, kernel, "GET", "training/progress").json()
    assert (notebook, exercise, True) in [
        (e["notebook"], e["exercise"], e["passed"]) for e in mine["results"]
    ]
    # the modules are the platform's curriculum (training/curriculum.json)
    assert [m["notebook"] for m in mine["modules"]] == [m.notebook for m in curriculum.modules]
    assert call(api, kernel, "GET", "training/learners").status_code == 403
