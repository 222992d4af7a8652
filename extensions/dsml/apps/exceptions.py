"""Errors of the apps service: each one line saying what was found and what is allowed."""

from __future__ import annotations

from dsml.service.exceptions import (  # noqa: F401 - re-exported: the apps service's errors
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    ServiceError,
    TooLarge,
)


class UnknownApp(NotFound):
    """No app with this slug, or not one the caller may see (404)."""


class SlugTaken(Conflict):
    """The slug belongs to another owner's app (409)."""
