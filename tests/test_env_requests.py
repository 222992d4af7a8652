"""Package requests: users file them from the CLI, see their own; admins see all and answer.

The CLI calls the portal service (/services/portal/api/env-requests).
"""

from __future__ import annotations

import json
import os
import subprocess

import httpx

from dsml.scopes import ENV_REQUESTS_ADMIN

from conftest import DSML, Platform, hub_token


def dsml(platform: Platform, token: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DSML_HUB_URL": platform.url, "JUPYTERHUB_API_TOKEN": token}
    env.pop("DSML_ADMIN_TOKEN", None)
    return subprocess.run(DSML + ["env", *args], capture_output=True, text=True, env=env)


def test_request_list_answer(platform: Platform) -> None:
    scientist = hub_token(platform, "scientist")
    analyst = hub_token(platform, "analyst")
    made = dsml(
        platform,
        scientist,
        "request",
        "lightgbm>=4",
        "--env",
        "datascience",
        "--reason",
        "gradient boosting for churn",
        "--json",
    )
    assert made.returncode == 0, made.stderr
    request = json.loads(made.stdout)
    assert request["status"] == "open" and request["user"] == "scientist"

    again = dsml(platform, scientist, "request", "lightgbm>=4", "--env", "datascience")
    assert again.returncode == 1 and "HTTP 409" in again.stderr and "already" in again.stderr
    bad = dsml(platform, scientist, "request", "rm -rf /", "--env", "datascience")
    assert bad.returncode == 1 and "HTTP 400" in bad.stderr
    unknown = dsml(platform, scientist, "request", "x", "--env", "nope")
    assert unknown.returncode == 2 and "unknown environment 'nope'" in unknown.stderr

    mine = json.loads(dsml(platform, analyst, "requests", "--json").stdout)
    assert all(r["user"] == "analyst" for r in mine)
    refused = dsml(platform, analyst, "answer", str(request["id"]), "--status", "accepted")
    assert refused.returncode == 1 and "HTTP 403" in refused.stderr

    admin = hub_token(platform, "admin")
    everyone = json.loads(dsml(platform, admin, "requests", "--json").stdout)
    assert request["id"] in [r["id"] for r in everyone]
    answered = dsml(
        platform,
        admin,
        "answer",
        str(request["id"]),
        "--status",
        "accepted",
        "--answer",
        "in the next datascience lock",
        "--json",
    )
    assert answered.returncode == 0, answered.stderr
    seen = json.loads(dsml(platform, scientist, "requests", "--json").stdout)
    row = next(r for r in seen if r["id"] == request["id"])
    assert row["status"] == "accepted" and row["answer"] == "in the next datascience lock"


def test_admin_rights_come_from_the_token_not_its_owner(platform: Platform) -> None:
    """An admin's token made without the admin scopes is an ordinary user for requests."""
    admin = hub_token(platform, "admin")
    r = httpx.post(
        f"{platform.url}/hub/api/users/admin/tokens",
        json={"note": "restricted", "scopes": ["read:users:name!user", "access:services"]},
        headers={"Authorization": f"token {admin}"},
        timeout=30,
    )
    assert r.status_code == 201, r.text
    restricted = r.json()["token"]
    scientist = hub_token(platform, "scientist")
    made = dsml(platform, scientist, "request", "xgboost", "--env", "datascience", "--json")
    assert made.returncode == 0, made.stderr
    request = json.loads(made.stdout)

    own = dsml(platform, restricted, "request", "duckdb", "--env", "python-minimal", "--json")
    assert own.returncode == 0, own.stderr
    seen = json.loads(dsml(platform, restricted, "requests", "--json").stdout)
    assert seen and {r["user"] for r in seen} == {"admin"}
    refused = dsml(platform, restricted, "answer", str(request["id"]), "--status", "done")
    assert refused.returncode == 1 and "HTTP 403" in refused.stderr
    assert ENV_REQUESTS_ADMIN in refused.stderr

    # the admin's full token, and the CLI's own admin token from the data dir, see everyone's
    everyone = json.loads(dsml(platform, admin, "requests", "--json").stdout)
    assert {"admin", "scientist"} <= {r["user"] for r in everyone}
    env = {k: v for k, v in os.environ.items() if k not in ("JUPYTERHUB_API_TOKEN",)}
    env["DSML_HUB_URL"] = platform.url
    env.pop("DSML_ADMIN_TOKEN", None)
    cli = subprocess.run(
        DSML + ["env", "requests", "--json", "--data-dir", str(platform.datadir.root)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert cli.returncode == 0, cli.stderr
    assert request["id"] in [r["id"] for r in json.loads(cli.stdout)]
