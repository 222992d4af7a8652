"""The hub configuration functions: roles and services follow the settings."""

from __future__ import annotations

import json
from pathlib import Path

from traitlets.config import Config

from dsml import scopes, settings
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


def test_portal_is_a_managed_service_with_least_privilege(tmp_path: Path) -> None:
    c = config_for(tmp_path)
    portal = next(s for s in c.JupyterHub.services if s["name"] == "portal")
    assert portal["command"][1:3] == ["-m", "dsml.portal"]
    args = dict(a.removeprefix("--").split("=", 1) for a in portal["command"][3:])
    assert args["PortalApp.data_dir"] == str(tmp_path / "data" / "portal")
    assert set(args) <= {
        "PortalApp.data_dir",
        "PortalApp.platform_data_dir",
        "PortalApp.environments_dir",
        "PortalApp.public_url",
        "PortalApp.training_dir",
    }
    assert portal["oauth_no_confirm"] is True
    assert set(portal["oauth_client_allowed_scopes"]) == {
        "read:users:name!user",
        "admin-ui",
        scopes.ENV_REQUESTS_ADMIN,
        scopes.HEALTH_READ,
        scopes.USAGE_ADMIN,
        # the home page's calls with the person's own session token, and the navigation
        "read:users:groups!user",
        "read:servers!user",
        "access:services!service=scheduler",
        "access:services!service=apps",
        scopes.JOBS_RUN,
    }
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    assert roles["portal"]["services"] == ["portal"]
    # usage figures: every user's activity, every job and run, every app and its views, read
    # only (no admin scope of the scheduler or the apps service)
    assert set(roles["portal"]["scopes"]) == {
        "proxy",
        "list:services",
        "read:services",
        "list:users",
        "read:users",
        "read:servers",
        "access:services!service=scheduler",
        "access:services!service=apps",
        scopes.JOBS_READ,
        scopes.APPS_READ,
    }
    # users and their servers' tokens may call the portal; no admin scope reaches a server
    assert "access:services!service=portal" in roles["user"]["scopes"]
    server_scopes = c.Spawner.server_token_scopes
    assert "access:services!service=portal" in server_scopes
    assert not set(server_scopes) & set(scopes.ADMIN_SCOPES)
    # the old hub page redirects to the portal's
    [(pattern, _handler, kwargs)] = c.JupyterHub.extra_handlers
    assert pattern == "/environments" and kwargs["url"] == "/services/portal/environments"


def test_portal_port_and_database_come_from_the_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DSML_PORTAL_PORT", "8799")
    monkeypatch.setenv("DSML_PORTAL_DB_URL", "postgresql://portal:secret@db/portal")
    c = config_for(tmp_path)
    portal = next(s for s in c.JupyterHub.services if s["name"] == "portal")
    assert portal["url"] == "http://127.0.0.1:8799"
    assert portal["environment"]["DSML_PORTAL_DB_URL"].endswith("@db/portal")
    assert not any("secret" in a for a in portal["command"])


def test_service_tokens_are_checked_with_one_hash_only_when_random(tmp_path: Path) -> None:
    """The platform's own tokens are long and random; a short one set by hand keeps the rounds."""
    c = config_for(tmp_path)
    assert c.JupyterHub.trust_user_provided_tokens is True
    tokens = [s["api_token"] for s in c.JupyterHub.services if s.get("api_token")]
    assert tokens and all(len(t) >= hubconfig.MIN_TRUSTED_TOKEN_LENGTH for t in tokens)
    by_hand = [*c.JupyterHub.services, {"name": "mine", "api_token": "secret123"}]
    assert hubconfig.service_tokens_are_random(by_hand) is False
    assert hubconfig.service_tokens_are_random([{"name": "managed"}]) is True


def test_user_code_runs_at_the_niceness_of_the_settings(tmp_path: Path) -> None:
    """Servers and runs get accounts.niceness (10 unless set); the processes are checked on
    the running platform (tests/test_faults.py)."""
    for given, expected in (({}, 10), ({"accounts": {"niceness": 15}}, 15)):
        data = settings.validate({"data_dir": str(tmp_path / "data"), **given})
        c = Config()
        hubconfig.update_all(c, data)
        assert c.DsmlLocalSpawner.niceness == expected
        (path,) = hubconfig.scheduler_config_files(data, hubconfig.datadir_for(data))[:1]
        assert json.loads(Path(path).read_text())["LocalExecutor"]["niceness"] == expected


def test_the_hub_reads_servers_last_use_from_the_proxy_every_minute(tmp_path: Path) -> None:
    """The culler judges by the hub's record of last use: it lags by at most a minute."""
    c = config_for(tmp_path)
    assert c.JupyterHub.last_activity_interval == 60
