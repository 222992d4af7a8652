"""Package requests: users file them from the CLI, see their own; admins see all and answer."""

from __future__ import annotations

import json
import os
import subprocess

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
