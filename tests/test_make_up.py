"""`make up` as a person runs it: relative data dir, default settings file, demo accounts."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from dsml.client import HEALTH_PATH

from conftest import DataDir, free_port, running_platform


def test_relative_data_dir_is_the_one_the_hub_uses(env_datadir: DataDir, tmp_path: Path) -> None:
    """`--data-dir .dsml` is relative to where `dsml up` runs, for the hub and services too."""
    with running_platform(tmp_path, Path(".dsml"), port=free_port()) as platform:
        root = tmp_path / ".dsml"
        assert (root / "demo-users.json").exists()
        assert (root / "hub" / "jupyterhub.sqlite").exists()
        assert not (root / "hub" / ".dsml").exists()
        users = json.loads((root / "demo-users.json").read_text())
        assert {u["name"] for u in users} >= {"admin", "analyst"}
        r = httpx.get(platform.url + HEALTH_PATH, timeout=10)
        assert r.status_code == 200 and r.json() == {"status": "ok"}
        # the portal keeps its database in the data dir the hub uses
        assert (root / "portal" / "portal.sqlite").exists()
