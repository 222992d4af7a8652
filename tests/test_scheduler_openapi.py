"""The OpenAPI file describes exactly the routes the scheduler serves."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from dsml.scheduler.apihandlers import default_handlers

SPEC = Path(__file__).parents[1] / "extensions" / "dsml" / "scheduler" / "openapi.yaml"


def served_paths() -> set[str]:
    paths = set()
    for route in default_handlers():
        pattern = route[0]
        if not pattern.startswith("/api/"):
            continue  # the page, OAuth callback and metrics are not API
        path = pattern.removeprefix("/api")
        path = path.replace(r"(output\.html|output\.ipynb)", "{output}")
        first = "{job_id}" if path.startswith("/jobs/") else "{run_id}"
        path = re.sub(r"\(\\d\+\)", first, path, count=1)
        paths.add(path)
    return paths


def test_every_route_is_documented_and_every_documented_path_served() -> None:
    spec = yaml.safe_load(SPEC.read_text())
    assert spec["openapi"].startswith("3.")
    assert set(spec["paths"]) == served_paths()


def test_errors_are_documented_with_the_status_message_shape() -> None:
    spec = yaml.safe_load(SPEC.read_text())
    error = spec["components"]["responses"]["Error"]["content"]["application/json"]["schema"]
    assert error["required"] == ["status", "message"]
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if method == "parameters":
                continue
            for code in op["responses"]:
                if code in ("400", "403", "404", "409", "413"):
                    assert op["responses"][code] == {"$ref": "#/components/responses/Error"}, (
                        path,
                        method,
                        code,
                    )
