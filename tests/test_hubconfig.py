"""The hub configuration functions: roles and services follow the settings."""

from __future__ import annotations

from pathlib import Path

from traitlets.config import Config

from dsml import settings
from dsml.hub import config as hubconfig


def config_for(tmp_path: Path, **overrides: object) -> Config:
    data = {"data_dir": str(tmp_path / "data"), **overrides}
    c = Config()
    hubconfig.update_all(c, settings.validate(data))
    return c


def test_every_role_names_a_defined_service(tmp_path: Path) -> None:
    for enabled in (True, False):
        c = config_for(tmp_path, culler={"enabled": enabled})
        services = {s["name"] for s in c.JupyterHub.services}
        for role in c.JupyterHub.load_roles:
            assert set(role.get("services", [])) <= services, role["name"]
        assert ("idle-culler" in services) is enabled


def test_stakeholders_get_no_server_rights(tmp_path: Path) -> None:
    c = config_for(tmp_path)
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    assert "stakeholders" not in roles["lab-user"]["groups"]
    assert not any(s.startswith("servers") for s in roles["user"]["scopes"])
    assert roles["admin"]["groups"] == ["platform-admins"]
