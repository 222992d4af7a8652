"""Fuzz the apps API from its OpenAPI file (schemathesis): no answer is a server error.

A bounded run (few examples per operation, fixed seed) as an analyst and as an admin.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dsml.client import APPS

from conftest import Platform, fuzz_api, hub_token


@pytest.mark.parametrize("name", ["analyst", "admin"])
def test_no_input_makes_a_server_error(platform: Platform, name: str, tmp_path: Path) -> None:
    run = fuzz_api(platform, APPS, hub_token(platform, name), tmp_path, max_examples=15)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "passed" in run.stdout
