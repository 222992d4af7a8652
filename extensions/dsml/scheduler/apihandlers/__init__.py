"""The scheduler's HTTP handlers, one module per resource; each ends in `default_handlers`."""

from __future__ import annotations

from typing import Any

from dsml.scheduler.apihandlers import jobs, pages, runs, service, worker


def default_handlers() -> list[tuple[str, Any]]:
    """Every route of the service, relative to its prefix."""
    routes: list[tuple[str, Any]] = []
    for module in (pages, service, jobs, runs, worker):
        routes += module.default_handlers
    return routes
