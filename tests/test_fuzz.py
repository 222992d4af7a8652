"""Fuzz every REST API of ours from its OpenAPI file (schemathesis), as a user and as an admin.

The APIs: the scheduler, the apps service, the portal and what the platform adds to the hub's
own API (`extensions/dsml/hub/openapi.yaml`). Each runs against the session's platform with a
fixed seed, once with an ordinary user's token and once with an admin's. The checks: no 5xx,
no answer the OpenAPI file does not describe (status code, content type, body schema), and
every error JSON `{status, message}` (tests/fuzz_hooks.py). Before the runs a real job with an
ended run, an app, a package request and a hub user are made, and 3 in 4 requests that name a
job, run, app, request or user name one of those, so fuzzed bodies reach the code behind the
404; the others name no real resource, so the fuzz changes nothing another test made.

Bounded in `make test` (a few examples per operation: all eight runs take about 1.5 minutes on an
idle 2-core machine, up to about 4 under load);
`make fuzz` sets DSML_FUZZ_EXAMPLES for a long run. The requests tried per API and user kind
are printed.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from conftest import ROOT, Platform, fuzz_api, hub_token

ORDINARY = {"scheduler": "scientist", "apps": "scientist", "portal": "newcomer", "hub": "scientist"}
"""The ordinary user each API is fuzzed as (one who owns something there)."""

EXAMPLES = {"scheduler": 10, "apps": 10, "portal": 12, "hub": 40}
"""Examples per operation in `make test`; the hub's one operation gets more."""

MANY = int(os.environ.get("DSML_FUZZ_EXAMPLES") or 0)
"""Examples per operation for every API when set (`make fuzz`)."""

NOTEBOOKS = Path(__file__).parent / "notebooks"
FUZZ_USER = "fuzz-target"
"""A hub user made for the hub API's fuzz: its password is what the fuzzer may change."""


def operations(service: str) -> dict[str, bool]:
    """`"METHOD /path"` of every operation of the API, and whether a hub token may call it."""
    spec = yaml.safe_load((ROOT / "extensions" / "dsml" / service / "openapi.yaml").read_text())
    ops = {}
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method in {"get", "put", "post", "patch", "delete"}:
                security = op.get("security", spec.get("security", []))
                ops[f"{method.upper()} {path}"] = any("hubToken" in s for s in security)
    return ops


@pytest.fixture(scope="module")
def seeds(platform: Platform, admin_api: httpx.Client) -> Iterator[dict[str, dict[str, list]]]:
    """A job with an ended run and an app of the scientist, a package request of the newcomer
    and a hub user: the resources the fuzzer aims at (tests/fuzz_hooks.py); removed after."""
    headers = {"Authorization": f"token {hub_token(platform, 'scientist')}"}
    with httpx.Client(base_url=platform.url + "/services/", headers=headers, timeout=60) as sci:
        notebook = NOTEBOOKS / "typed_params.ipynb"
        r = sci.post(
            "scheduler/api/jobs",
            json={
                "name": "fuzzed",
                "notebook": json.loads(notebook.read_text()),
                "notebook_name": notebook.name,
                "environment": "python-minimal",
            },
        )
        assert r.status_code == 201, r.text
        job = r.json()["id"]
        r = sci.post(f"scheduler/api/jobs/{job}/runs", json={})
        assert r.status_code == 201, r.text
        run = r.json()["id"]
        deadline = time.monotonic() + 180
        while sci.get(f"scheduler/api/runs/{run}").json()["state"] in {
            "queued",
            "starting",
            "running",
        }:
            assert time.monotonic() < deadline, f"run {run} of the fuzzed job never ended"
            time.sleep(0.5)
        r = sci.post(
            "apps/api/apps",
            json={
                "slug": "fuzzed",
                "title": "Fuzzed",
                "notebook": json.loads((NOTEBOOKS / "widget_slider.ipynb").read_text()),
            },
        )
        assert r.status_code == 201, r.text
        r = httpx.post(
            platform.url + "/services/portal/api/env-requests",
            json={"package": "fuzzed-package", "environment": "datascience"},
            headers={"Authorization": f"token {hub_token(platform, 'newcomer')}"},
            timeout=60,
        )
        assert r.status_code == 201, r.text
        request = r.json()["id"]
        r = admin_api.post(f"users/{FUZZ_USER}")
        assert r.status_code == 201, r.text
        try:
            yield {
                "scheduler": {"job_id": [job], "run_id": [run]},
                "apps": {"slug": ["fuzzed"]},
                "portal": {"request_id": [request]},
                "hub": {"user_name": [FUZZ_USER]},
            }
        finally:
            # the fuzzer may have cancelled or deleted them already: any 2xx or 404 will do
            sci.delete(f"scheduler/api/jobs/{job}")
            sci.delete("apps/api/apps/fuzzed")
            admin_api.delete(f"users/{FUZZ_USER}")


@pytest.mark.parametrize("kind", ["user", "admin"])
@pytest.mark.parametrize("api", ["scheduler", "apps", "portal", "hub"])
def test_fuzz(
    platform: Platform,
    seeds: dict[str, dict[str, list]],
    api: str,
    kind: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No input gets a 5xx, an answer the OpenAPI file does not describe or a non-JSON error."""
    name = "admin" if kind == "admin" else ORDINARY[api]
    examples = MANY or EXAMPLES[api]
    started = time.monotonic()
    run = fuzz_api(platform, api, hub_token(platform, name), tmp_path, examples, seeds[api])
    seconds = time.monotonic() - started
    counts: dict[str, int] = {}
    if (tmp_path / "counts.json").exists():
        counts = json.loads((tmp_path / "counts.json").read_text())
    by_status: Counter[str] = Counter()
    by_operation: dict[str, set[int]] = {}
    for key, n in counts.items():
        method, path, status = key.split(" ")
        by_status[status] += n
        by_operation.setdefault(f"{method} {path}", set()).add(int(status))
    with capsys.disabled():
        print(
            f"\nfuzz {api} as {name} ({kind}): {sum(counts.values())} requests, "
            f"{examples} examples per operation, {seconds:.0f} s; by status: "
            + ", ".join(f"{s} x{n}" for s, n in sorted(by_status.items()))
        )
    out = run.stdout[-8000:] + run.stderr[-2000:]
    assert run.returncode == 0, out
    ops = operations(api)
    assert not set(ops) - set(by_operation), (set(ops) - set(by_operation), out[-3000:])
    if api == "apps":
        # the session's declared app (other tests use it) is untouched: only seeds are aimed at
        r = httpx.get(
            platform.url + "/services/apps/api/apps/declared-squares",
            headers={"Authorization": f"token {platform.admin_token}"},
            timeout=30,
        )
        assert r.status_code == 200 and r.json()["title"] == "Squares (declared)", r.text
    if kind == "admin":
        # an admin's token gets past the rights check of every operation a hub token may call
        refused = [op for op, hub in ops.items() if hub and by_operation[op] <= {401, 403}]
        assert not refused, (refused, out[-3000:])
