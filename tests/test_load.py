"""Load, a short bounded pass: bench/load.py's driver against the session's platform.

30 users arrive within a few seconds and sign in through the login form, read the portal's home
and usage figures, 3 of them open a published app (page, kernel websocket, close) while the
others load the apps gallery and list; the lab users list their jobs and run history and 3 of
them create a job and submit a run, whose end is waited for. Meanwhile `/hub/health` is asked
four times a second. The test asserts that no request failed, that every run succeeded and that
the hub always answered its health check; latencies are printed, never asserted (the full
200-user figures are `make bench`'s, in bench/README.md). The load's users, jobs and app are
deleted at the end, so the session's platform holds what it held before.
"""

from __future__ import annotations

import sys

import httpx

from conftest import ROOT, Platform, run_async

sys.path.insert(0, str(ROOT / "bench"))
import load  # noqa: E402 - bench/ is a folder of scripts, not a package


def test_short_load_has_no_errors_and_the_hub_always_answers(
    platform: Platform, admin_api: httpx.Client
) -> None:
    opts = load.Options(
        users=30,
        viewers=3,
        jobs=3,
        arrival_seconds=5,
        deadline_seconds=900,
        runs_deadline_seconds=900,
    )
    results = run_async(
        load.drive(platform.url, platform.admin_token, opts, say=print, prefix="loadtest-")
    )
    print("\n".join(load.report(results)))

    errors = {k: row["first_errors"] for k, row in results["requests"].items() if row["errors"]}
    assert results["errors_total"] == 0, errors
    assert results["load"]["users_done"] == 30
    # every kind of request was made (a driver that skipped a step would pass silently)
    assert {k for k, row in results["requests"].items() if row["n"]} == set(load.KINDS)
    assert results["runs"]["states"] == {"succeeded": 3}
    health = results["health"]
    assert health["samples"] > 0
    assert health["unanswered"] == 0, health["first_unanswered"]

    # nothing of the load is left on the session's platform
    assert results["left_behind"] == []
    names = [u["name"] for u in admin_api.get("users", params={"limit": "1000"}).json()]
    assert not [n for n in names if n.startswith("loadtest-")]
