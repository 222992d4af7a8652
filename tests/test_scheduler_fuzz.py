"""Fuzz the scheduler API from its OpenAPI file (schemathesis): no answer is a server error.

A bounded run (few examples per operation, fixed seed) as a data scientist and as an admin,
about a minute in all: ids and cursors beyond 64 bits, odd bodies and odd content types must
each get a 4xx, never a 500. The OpenAPI file itself is checked against the routes in
test_scheduler_openapi.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dsml.client import SCHEDULER, service_api

from conftest import Platform, hub_token

SPEC = Path(__file__).parents[1] / "extensions" / "dsml" / "scheduler" / "openapi.yaml"
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"


@pytest.mark.parametrize("name", ["scientist", "admin"])
def test_no_input_makes_a_server_error(platform: Platform, name: str, tmp_path: Path) -> None:
    token = hub_token(platform, name)
    run = subprocess.run(
        [
            str(SCHEMATHESIS),
            "--no-color",
            "run",
            str(SPEC),
            "--url",
            platform.url + service_api(SCHEDULER).rstrip("/"),
            "--header",
            f"Authorization: token {token}",
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,"
            "response_schema_conformance",
            "--max-examples",
            "20",
            "--seed",
            "1",
            "--workers",
            "1",
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "--request-timeout",
            "20",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
