"""schemathesis hooks for the platform's fuzz runs (loaded through SCHEMATHESIS_HOOKS).

- A check, `error_is_status_message`: every error answer (4xx, 5xx) is JSON
  `{"status": <the response's code>, "message": <text>}`, the one error shape of every API of
  ours (the hub's own API answers errors the same way).
- A count of the requests sent, per operation and status code, written as JSON to the file
  `DSML_FUZZ_COUNT_FILE` names when the run ends (the test prints the totals).
- Real resources: 3 in 4 of the requests that name a path parameter listed in `DSML_FUZZ_IDS`
  (JSON `{"job_id": [1], "slug": ["x"], ...}`, made by the test before the run) name one of
  those instead of a generated value, so fuzzed bodies and queries reach past the 404 to the
  code that reads and changes a real job, run, app or user. The others, deletes and requests
  that start something costly (a run, an app server) name no real resource at all: the
  platform is the test session's, shared with other tests.
- Names of accounts the tests sign in with are never sent as a path parameter: fuzzing the
  hub's password API as an admin must not change their passwords
  (`DSML_FUZZ_PROTECTED_NAMES`, comma-separated).
"""

from __future__ import annotations

import atexit
import json
import os
import re
import zlib
from collections import Counter
from typing import Any

import schemathesis

COUNTS: Counter[str] = Counter()
"""Requests sent, keyed `"<METHOD> <path template> <status>"`."""

PROTECTED = {n.lower() for n in os.environ.get("DSML_FUZZ_PROTECTED_NAMES", "").split(",") if n}
"""Account names no request may name (lower case)."""

SEEDS: dict[str, list[Any]] = json.loads(os.environ.get("DSML_FUZZ_IDS") or "{}")
"""Values of real resources per path parameter name."""

NAME_LIKE = re.compile(r"[A-Za-z0-9._@+-]{1,200}")
"""Strings that could be a slug or a user name."""

UNSEEDED = {("POST", "/jobs/{job_id}/runs"), ("POST", "/apps/{slug}/start")}
"""Operations whose real target would start costly work (a notebook run, a Voila server)."""


@schemathesis.check
def error_is_status_message(ctx: Any, response: Any, case: Any) -> bool | None:
    """An error answer is JSON `{status, message}` whose status is the response's code."""
    if response.status_code < 400:
        return None
    media = ";".join(response.headers.get("content-type", [""])).split(";")[0].strip().lower()
    if media != "application/json":
        raise AssertionError(
            f"error {response.status_code} is {media or 'untyped'}, not application/json: "
            f"{response.text_lossy[:200]!r}"
        )
    try:
        body = json.loads(response.content)
    except ValueError:
        raise AssertionError(
            f"error {response.status_code} is not valid JSON: {response.text_lossy[:200]!r}"
        ) from None
    if not isinstance(body, dict) or set(body) != {"status", "message"}:
        raise AssertionError(
            f"error {response.status_code} body is not {{status, message}}: {body!r:.200}"
        )
    if body["status"] != response.status_code or not isinstance(body["message"], str):
        raise AssertionError(
            f"error {response.status_code} says status {body['status']!r} and message "
            f"{body['message']!r:.100}; status must be the response's code, message a string"
        )
    if not body["message"].strip():
        raise AssertionError(f"error {response.status_code} has an empty message")
    return True


def _elsewhere(value: Any) -> Any:
    """A value that names no resource the session made, close to the generated one.

    Ids below a billion and name-like strings could be a real job, app or user made by the
    session's other tests (or listed by a page the stateful phase follows links from); odd
    values (negative, huge, markup, separators) stay as generated.
    """
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 10**9:
        return value + 10**9
    if isinstance(value, str) and NAME_LIKE.fullmatch(value):
        return value + "-fuzz"
    return value


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    """Aim 3 in 4 requests at the seeded resources and the rest at none of the session's.

    A path parameter with seeds names a seed, or (the other requests, and every delete or
    costly request) a value no real resource has, so that neither a generated id nor a link the
    stateful phase follows from a listing deletes or changes another test's job, app or user
    (the session's declared app is one). A parameter without seeds never names a demo account.
    A rewrite, not a filter, so that it also holds for the examples and coverage phases; which
    requests are aimed follows from the generated values (a checksum), so a seed replays.
    """
    params = case.path_parameters
    if not params:
        return
    method = case.operation.method.upper()
    seedable = method != "DELETE" and (method, case.operation.path) not in UNSEEDED
    for key, value in list(params.items()):
        choices = SEEDS.get(key)
        if choices:
            digest = zlib.crc32(repr((key, value, case.query, case.body)).encode())
            if seedable and digest % 4:
                params[key] = choices[(digest >> 2) % len(choices)]
            else:
                params[key] = _elsewhere(value)
        elif isinstance(value, str) and value.strip().lower() in PROTECTED:
            params[key] = value + "-fuzz"


@schemathesis.hook
def after_call(context: Any, case: Any, response: Any) -> None:
    """Count the request."""
    # the request's own method: the coverage phase also sends methods the path does not serve
    COUNTS[f"{response.request.method} {case.operation.path} {response.status_code}"] += 1


def _write_counts() -> None:
    path = os.environ.get("DSML_FUZZ_COUNT_FILE")
    if path:
        with open(path, "w") as out:
            json.dump(dict(COUNTS), out, indent=1, sort_keys=True)


atexit.register(_write_counts)
