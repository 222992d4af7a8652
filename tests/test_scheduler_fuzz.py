"""Fuzz the scheduler API from its OpenAPI file (schemathesis): no answer is a server error.

A bounded run (few examples per operation, fixed seed) as a data scientist and as an admin,
about a minute in all: ids and cursors beyond 64 bits, odd bodies and odd content types must
each get a 4xx, never a 500. The OpenAPI file itself is checked against the routes in
test_scheduler_openapi.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dsml.client import SCHEDULER

from conftest import Platform, fuzz_api, hub_token


@pytest.mark.parametrize("name", ["scientist", "admin"])
def test_no_input_makes_a_server_error(platform: Platform, name: str, tmp_path: Path) -> None:
    run = fuzz_api(platform, SCHEDULER, hub_token(platform, name), tmp_path, max_examples=20)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
