"""The access matrix (tests/access_matrix.yaml) walked cell by cell against the running platform.

Every caller the table names gets a real credential on the session's platform: the demo users'
hub tokens, an admin token with fewer scopes, an expired token, a deleted user's token, a viewer
whose share was revoked and the usage-reader token app kernels get. The objects the rows name
(a job and a run of the scientist, an app of the scientist shared with the stakeholder, a
package request) are made first; a delete gets an object of its own per cell. Each row is one
test that lists every cell whose answer differs from the table.

`python tests/test_access_matrix.py --markdown` prints the table as Markdown
(docs/access-matrix.md holds that rendering; a test keeps it current).
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from conftest import Platform, hub_token

ROOT = Path(__file__).resolve().parents[1]
MATRIX = Path(__file__).with_name("access_matrix.yaml")
RENDERED = ROOT / "docs" / "access-matrix.md"
NOTEBOOKS = Path(__file__).parent / "notebooks"
DEMO = ["newcomer", "analyst", "scientist", "stakeholder", "admin"]
OWNER = "scientist"
WELCOME = "01-welcome-to-jupyterlab.ipynb"
LOGIN_PATHS = ("/hub/login", "/hub/api/oauth2/authorize")
"""Where a page sends a visitor nobody signed in as (the hub's login, or its OAuth step)."""


# --------------------------------------------------------------------------- the table


def load_matrix(path: Path = MATRIX) -> tuple[list[str], list[dict[str, Any]]]:
    """The callers and the rows of the table, each row's cells filled in for every caller."""
    data = yaml.safe_load(path.read_text())
    callers: list[str] = data["callers"]
    rows = []
    for raw in data["rows"]:
        known = {"req", "why", "else", "body", "form", "via", "reshare", "xfail", *callers}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"row {raw.get('req')!r}: unknown key(s) {sorted(unknown)}")
        cells = {c: raw.get(c, raw.get("else")) for c in callers}
        missing = [c for c, v in cells.items() if v is None]
        if missing:
            raise ValueError(f"row {raw['req']!r} says nothing for {missing}; add them or `else`")
        method, _, path_template = raw["req"].partition(" ")
        rows.append({**raw, "method": method, "path": path_template, "cells": cells})
    return callers, rows


def render_markdown(path: Path = MATRIX) -> str:
    """The table as Markdown: a row per endpoint or page, a column per caller."""
    callers, rows = load_matrix(path)
    out = [
        "# Access matrix",
        "",
        "Generated from `tests/access_matrix.yaml` by `python tests/test_access_matrix.py "
        "--markdown`; `tests/test_access_matrix.py` walks every cell against a running platform.",
        "",
        "Callers: the demo users with their own hub token; *reduced*: the admin's token with only "
        "`read:users:name!user` and access to the three services; *expired*: the admin's token "
        "after its expiry; *deleted*: the token of a data scientist whose account was deleted; "
        "*revoked*: a stakeholder whose share of the app was revoked; *usage*: the usage-reader "
        "token app kernels get. `{job}`, `{run}`, `{app}` are the scientist's; `{app}` is "
        "shared with the stakeholder. `login`: sent to the hub's sign-in. `skip`: not walked.",
        "",
        "| request | " + " | ".join(callers) + " |",
        "| --- | " + " | ".join("---" for _ in callers) + " |",
    ]
    notes = []
    for row in rows:
        label = f"`{row['method']} {row['path']}`"
        if row.get("why"):
            notes.append(f"- {label}: {' '.join(str(row['why']).split())}")
        if row.get("xfail"):
            notes.append(f"- {label} **known hole** (test marked xfail): {row['xfail']}")
        out.append(f"| {label} | " + " | ".join(str(row["cells"][c]) for c in callers) + " |")
    if notes:
        out += ["", "Notes:", "", *notes]
    return "\n".join(out) + "\n"


CALLERS, ROWS = load_matrix()


# --------------------------------------------------------------------------- the world


@dataclass
class World:
    """The platform, a client per caller, and the objects the rows name."""

    url: str
    clients: dict[str, httpx.Client]
    names: dict[str, str]
    values: dict[str, str] = field(default_factory=dict)
    fresh: dict[str, Callable[[], str]] = field(default_factory=dict)
    victims: dict[str, str] = field(default_factory=dict)
    sessions: dict[str, httpx.Client] = field(default_factory=dict)


def client(url: str, token: str | None) -> httpx.Client:
    """An httpx client on the platform that follows no redirect and keeps no cookie."""
    headers = {"Authorization": f"token {token}"} if token else {}
    return httpx.Client(base_url=url, headers=headers, timeout=90, follow_redirects=False)


def call(c: httpx.Client, method: str, path: str, **kw: Any) -> httpx.Response:
    """One request; cookies the answer set are dropped so every request stands alone."""
    try:
        return c.request(method, path, **kw)
    finally:
        c.cookies.clear()


def sign_in(url: str, name: str, password: str) -> httpx.Client:
    """A browser-like session: signed in through the hub's login form, cookies kept."""
    c = httpx.Client(base_url=url, timeout=90, follow_redirects=False)
    c.get("/hub/login")
    r = c.post(
        "/hub/login",
        data={"username": name, "password": password, "_xsrf": c.cookies.get("_xsrf")},
    )
    assert r.status_code == 302, f"{name} could not sign in: {r.status_code} {r.text[:200]}"
    return c


def ok(r: httpx.Response, *codes: int) -> dict[str, Any]:
    """The JSON of an answer that had to succeed (setup), or a one-line failure naming it."""
    assert r.status_code in codes, (
        f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text[:300]}"
    )
    return r.json() if r.content and "json" in r.headers.get("content-type", "") else {}


def notebook(name: str = "writes_marker.ipynb") -> dict[str, Any]:
    """A small notebook from tests/notebooks."""
    return json.loads((NOTEBOOKS / name).read_text())


def tiny_notebook() -> dict[str, Any]:
    """A one-cell notebook that runs in well under a second."""
    return {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": None,
                "metadata": {},
                "outputs": [],
                "source": "x = 1",
            }
        ],
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def wait_run(sci: httpx.Client, run_id: int, timeout: float = 120) -> dict[str, Any]:
    """Wait for a run to end; it must succeed (the table's `latest` rows need it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = ok(call(sci, "GET", f"/services/scheduler/api/runs/{run_id}"), 200)
        if run["state"] in ("succeeded", "failed", "timed_out", "cancelled", "lost", "skipped"):
            assert run["state"] == "succeeded", f"run {run_id} {run['state']}: {run['message']}"
            return run
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} did not end in {timeout} s")


def new_job(sci: httpx.Client, label: str, **fields: Any) -> int:
    """A job of the scientist (tiny notebook, python-minimal)."""
    body = {
        "name": f"matrix {label}",
        "notebook": tiny_notebook(),
        "environment": "python-minimal",
        **fields,
    }
    return int(ok(call(sci, "POST", "/services/scheduler/api/jobs", json=body), 201)["id"])


def new_run(sci: httpx.Client, job_id: int) -> int:
    """A run of the job, waited for until it succeeded."""
    r = call(sci, "POST", f"/services/scheduler/api/jobs/{job_id}/runs", json={"parameters": {}})
    run_id = int(ok(r, 201)["id"])
    wait_run(sci, run_id)
    return run_id


def new_app(sci: httpx.Client, slug: str, share: dict[str, Any] | None = None) -> str:
    """Publish the slider notebook as an app of the scientist."""
    body: dict[str, Any] = {
        "slug": slug,
        "title": "Matrix",
        "notebook": notebook("widget_slider.ipynb"),
    }
    if share:
        body["share"] = share
    ok(call(sci, "POST", "/services/apps/api/apps", json=body), 201)
    return slug


def wait_app(sci: httpx.Client, slug: str, timeout: float = 120) -> None:
    """Start the app's server and wait until it is ready."""
    ok(call(sci, "POST", f"/services/apps/api/apps/{slug}/start"), 200)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = ok(call(sci, "GET", f"/services/apps/api/apps/{slug}/status"), 200)
        if status.get("ready"):
            return
        time.sleep(0.3)
    raise AssertionError(f"app {slug} not ready in {timeout} s: {status}")


def hub_user(admin: httpx.Client, name: str, group: str) -> str:
    """Create `name` in `group` and return a token of theirs (made by the admin)."""
    ok(call(admin, "POST", f"/hub/api/users/{name}"), 201)
    ok(call(admin, "POST", f"/hub/api/groups/{group}/users", json={"users": [name]}), 200)
    r = call(admin, "POST", f"/hub/api/users/{name}/tokens", json={"note": "access matrix"})
    return str(ok(r, 201)["token"])


@pytest.fixture(scope="module")
def world(platform: Platform) -> Iterator[World]:
    """Credentials for every caller and the objects the rows name, on the session's platform."""
    url = platform.url
    tag = uuid.uuid4().hex[:6]
    tokens: dict[str, str | None] = {name: hub_token(platform, name) for name in DEMO}
    tokens["anonymous"] = None
    admin = client(url, tokens["admin"])
    sci = client(url, tokens["scientist"])
    names = {name: name for name in DEMO} | {"anonymous": "nobody", "reduced": "admin"}

    # an expired token: made first, so it has expired by the time the rows run
    r = call(
        admin, "POST", "/hub/api/users/admin/tokens", json={"note": "expires", "expires_in": 1}
    )
    tokens["expired"] = ok(r, 201)["token"]
    names["expired"] = "admin"
    r = call(
        admin,
        "POST",
        "/hub/api/users/admin/tokens",
        json={
            "note": "reduced",
            "scopes": [
                "read:users:name!user",
                "access:services!service=scheduler",
                "access:services!service=apps",
                "access:services!service=portal",
            ],
        },
    )
    tokens["reduced"] = ok(r, 201)["token"]

    # a deleted user's token: a data scientist (who could do much) made and then removed
    gone = f"mx-gone-{tag}"
    tokens["deleted"] = hub_user(admin, gone, "data-scientists")
    names["deleted"] = gone
    ok(call(admin, "DELETE", f"/hub/api/users/{gone}"), 204)

    tokens["usage"] = platform.datadir.secret("usage-reader-token")
    names["usage"] = "usage-reader"

    # the scientist's job with one successful run
    job = new_job(sci, "fixture")
    run = new_run(sci, job)
    shared_job = new_job(sci, "shared", shared_with=["analysts"])

    # the scientist's app, shared with the stakeholder, and with a viewer who then loses it
    revoked = f"mx-revoked-{tag}"
    tokens["revoked"] = hub_user(admin, revoked, "stakeholders")
    names["revoked"] = revoked
    slug = new_app(sci, f"mx-app-{tag}", share={"users": ["stakeholder", revoked]})
    wait_app(sci, slug)
    viewer = client(url, tokens["revoked"])
    # before the revocation the viewer gets in (else the revoked column would prove nothing)
    ok(call(viewer, "GET", f"/services/apps/a/{slug}"), 302)
    assert call(viewer, "GET", f"/user/{OWNER}/app-{slug}/").status_code == 200
    ok(call(sci, "DELETE", f"/services/apps/api/apps/{slug}/shares/users/{revoked}"), 200)
    viewer.close()

    # a user whose password the admin rows change (no demo account is touched)
    target = f"mx-target-{tag}"
    hub_user(admin, target, "newcomers")
    password = uuid.uuid4().hex
    for name in (target, revoked):
        r = call(admin, "PUT", f"/hub/api/dsml/users/{name}/password", json={"password": password})
        ok(r, 200)

    # hub pages take no token: these callers sign in through the login form, as people do
    sessions = {name: sign_in(url, name, platform.password(name)) for name in DEMO}
    sessions["revoked"] = sign_in(url, revoked, password)

    # a package request of the analyst
    analyst = client(url, tokens["analyst"])
    r = call(
        analyst,
        "POST",
        "/services/portal/api/env-requests",
        json={"package": f"mxpkg-{tag}", "environment": "python-minimal", "reason": "matrix"},
    )
    request = ok(r, 201)["id"]
    analyst.close()

    clients = {caller: client(url, tokens[caller]) for caller in CALLERS}
    # the dead credentials are dead at the hub itself (else their columns would prove nothing)
    for dead in ("expired", "deleted"):
        r = call(clients[dead], "GET", "/hub/api/user")
        assert r.status_code == 403, f"the {dead} token still works at the hub: {r.text[:200]}"
    counter = iter(range(10**6))
    published: list[str] = [slug]

    def fresh_app() -> str:
        published.append(new_app(sci, f"mx-del-{tag}-{next(counter)}"))
        return published[-1]

    world = World(
        url=url,
        clients=clients,
        names=names,
        values={
            "job": str(job),
            "shared_job": str(shared_job),
            "run": str(run),
            "app": slug,
            "request": str(request),
            "owner": OWNER,
            "target": target,
        },
        fresh={
            "fresh_job": lambda: str(new_job(sci, f"to delete {next(counter)}")),
            "fresh_run": lambda: str(new_run(sci, new_job(sci, f"run to delete {next(counter)}"))),
            "fresh_app": fresh_app,
        },
        sessions=sessions,
    )
    world.values["tag"] = tag
    yield world
    # the apps the rows published, and the matrix's own; the hub users it made
    for c in [*clients.values(), *sessions.values()]:
        c.close()
    listing = ok(call(admin, "GET", "/services/apps/api/apps", params={"all": "1"}), 200)
    for app in listing["apps"]:
        if app["slug"].startswith(("mx-pub-", "mx-del-", "mx-app-")) and tag in app["slug"]:
            call(admin, "DELETE", f"/services/apps/api/apps/{app['slug']}")
    for name in (revoked, target):
        call(admin, "DELETE", f"/hub/api/users/{name}")
    admin.close()
    sci.close()


# --------------------------------------------------------------------------- one cell


def body_for(row: dict[str, Any], caller: str, world: World) -> Any:
    """The request body a row sends for `caller` (named bodies are made per caller)."""
    body = row.get("body")
    tag = world.values["tag"]
    if body == "notebook":
        return {"notebook": tiny_notebook()}
    if body == "job":
        return {
            "name": f"matrix {caller}",
            "notebook": tiny_notebook(),
            "environment": "python-minimal",
        }
    if body == "app":
        return {
            "slug": f"mx-pub-{tag}-{caller}",
            "title": "Matrix",
            "notebook": notebook("widget_slider.ipynb"),
        }
    if body == "request":
        return {
            "package": f"mxpkg-{tag}-{caller}",
            "environment": "python-minimal",
            "reason": "matrix",
        }
    if body == "progress":
        return {"notebook": WELCOME, "exercise": "01.1", "passed": True}
    return body


def path_for(row: dict[str, Any], caller: str, world: World) -> str:
    """The row's path with its placeholders filled for `caller`.

    A `{fresh_*}` placeholder is an object made for this cell when the caller should succeed
    (a delete that works must not take another cell's object); callers who should be refused
    share one object per row.
    """
    values = {**world.values, "self": world.names[caller]}
    path = row["path"]
    for key, make in world.fresh.items():
        if "{" + key + "}" in path:
            expected = row["cells"][caller]
            if isinstance(expected, int) and expected < 300:
                values[key] = make()
            else:
                victim = f"{row['req']}"
                if victim not in world.victims:
                    world.victims[victim] = make()
                values[key] = world.victims[victim]
    return path.format(**values)


def answer(r: httpx.Response) -> str | int:
    """The answer as a cell says it: `login` (a redirect to the hub's sign-in), else the status."""
    if r.status_code in (302, 303) and any(p in r.headers.get("location", "") for p in LOGIN_PATHS):
        return "login"
    return r.status_code


def walk(row: dict[str, Any], world: World) -> list[str]:
    """Every cell of a row whose answer differs from the table, one line each."""
    wrong = []
    for caller in CALLERS:
        expected = row["cells"][caller]
        if expected == "skip":
            continue
        if row.get("reshare"):
            call(
                world.clients["scientist"],
                "POST",
                f"/services/apps/api/apps/{world.values['app']}/shares",
                json={"users": ["stakeholder"]},
            )
        path = path_for(row, caller, world)
        body = body_for(row, caller, world)
        session = world.sessions.get(caller) if row.get("via") == "session" else None
        if session is not None:
            # a page of the hub: the caller's signed-in session (a form carries its _xsrf)
            form = row.get("form")
            data = {**form, "_xsrf": session.cookies.get("_xsrf")} if form else None
            r = session.request(row["method"], path, data=data)
        else:
            # a token (which the hub's pages ignore), or nothing for the anonymous caller
            form = row.get("form")
            kw = {"data": form} if form else {"json": body}
            r = call(world.clients[caller], row["method"], path, **kw)
        got = answer(r)
        if row.get("body") == "app" and r.status_code == 201:
            # a publish starts the app's server: stop and remove it before the next cell
            call(world.clients["admin"], "DELETE", f"/services/apps/api/apps/{body['slug']}")
        if got != expected:
            detail = (
                r.text[:160].replace("\n", " ") if got != "login" else r.headers.get("location")
            )
            wrong.append(f"{caller}: expected {expected}, got {got} ({detail})")
    return wrong


def row_params() -> list[Any]:
    """One test per row, in the table's order; a row with `xfail` is a known hole."""
    params = []
    for row in ROWS:
        marks = [pytest.mark.xfail(reason=row["xfail"], strict=True)] if row.get("xfail") else []
        params.append(pytest.param(row, id=row["req"], marks=marks))
    return params


@pytest.mark.parametrize("row", row_params())
def test_access_matrix(row: dict[str, Any], world: World) -> None:
    wrong = walk(row, world)
    assert not wrong, (
        f"{row['req']}: {len(wrong)} cell(s) differ from tests/access_matrix.yaml:\n"
        + "\n".join(wrong)
    )


def test_rendering_is_current() -> None:
    """docs/access-matrix.md is the table as it stands (regenerate it with --markdown)."""
    assert RENDERED.read_text() == render_markdown(), (
        "docs/access-matrix.md is stale: run `python tests/test_access_matrix.py --markdown > "
        "docs/access-matrix.md`"
    )


if __name__ == "__main__":
    if sys.argv[1:] == ["--markdown"]:
        sys.stdout.write(render_markdown())
    else:
        sys.exit("usage: python tests/test_access_matrix.py --markdown")
