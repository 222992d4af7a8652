"""Fuzz the portal API from its OpenAPI file (schemathesis): no answer is a server error.

A bounded run (few examples per operation, fixed seed) as a learner, an analyst and an admin,
so it stays well under a minute each; every operation of the file is tested (the training
progress and usage figures included), and the admin gets past the admin-only ones. The OpenAPI
file itself is checked against the routes in test_portal.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dsml.client import PORTAL

from conftest import Platform, fuzz_api, hub_token

ADMIN_ONLY = ("GET /training/learners", "GET /usage/users")
"""Operations only a token with custom:dsml:usage:admin gets a 200 from."""


@pytest.mark.parametrize("name", ["newcomer", "analyst", "admin"])
def test_no_input_makes_a_server_error(platform: Platform, name: str, tmp_path: Path) -> None:
    run = fuzz_api(platform, PORTAL, hub_token(platform, name), tmp_path, max_examples=25)
    out = run.stdout + run.stderr
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    selected = re.search(r"Selected: (\d+)/(\d+)", out)
    tested = re.search(r"Tested: (\d+)", out)
    assert selected and tested, out[-3000:]
    assert selected.group(1) == selected.group(2) == tested.group(1), out[-3000:]
    if name == "admin":
        refused = out.split("403 Forbidden", 1)[1] if "403 Forbidden" in out else ""
        assert not any(op in refused for op in ADMIN_ONLY), out[-3000:]
