"""The scheduler's HTTP handlers, one module per resource; each ends in `default_handlers`."""

from __future__ import annotations

from typing import Any

from dsml.scheduler.apihandlers import jobs, pages, runs, service, worker


def default_handlers(prefix: str) -> list[tuple[str, type]]:
    """Every route of the service under its prefix."""
    p = prefix.rstrip("/")
    routes: list[tuple[str, Any]] = []
    for module in (pages, service, jobs, runs, worker):
        routes += [(p + path, handler) for path, handler in module.default_handlers]
    return routes
