"""Errors of the portal; each carries the HTTP status the API answers with."""

from __future__ import annotations

from dsml.service.exceptions import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    ServiceError,
    TooLarge,
    UnsupportedMediaType,
)

__all__ = [
    "BadRequest",
    "Conflict",
    "DuplicateRequest",
    "Forbidden",
    "NotFound",
    "ServiceError",
    "TooLarge",
    "UnknownRequest",
    "UnsupportedMediaType",
]


class DuplicateRequest(Conflict):
    """The caller has an open request for the same package in the same environment (409)."""


class UnknownRequest(NotFound):
    """No package request with that id (404)."""
