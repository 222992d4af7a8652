"""Errors a service answers with: each carries the HTTP status its JSON error gets.

A service package subclasses these in its own exceptions.py (with messages that say what was
found, what was expected and what to do); `APIHandler` turns any of them into
`{"status": ..., "message": ...}` and logs it in one line.
"""

from __future__ import annotations


class ServiceError(Exception):
    """An error fit to show the caller on one line, with its HTTP status."""

    status = 400

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        if status is not None:
            self.status = status

    @property
    def message(self) -> str:
        """The text the caller sees."""
        return str(self)


class BadRequest(ServiceError):
    """The request is malformed or names a value that is not allowed (400)."""

    status = 400


class Forbidden(ServiceError):
    """The caller is not signed in, or may not do this (403)."""

    status = 403


class NotFound(ServiceError):
    """No such thing, or not one the caller may see (404)."""

    status = 404


class Conflict(ServiceError):
    """The request conflicts with the current state, e.g. a duplicate (409)."""

    status = 409


class TooLarge(ServiceError):
    """A request body or a payload is over the configured size limit (413)."""

    status = 413


class UnsupportedMediaType(ServiceError):
    """The request body is not of a type the route reads, e.g. not JSON (415)."""

    status = 415


class Unavailable(ServiceError):
    """The service cannot do this right now, e.g. its database is busy or unreachable (503).

    The request did nothing; the same request a little later may succeed.
    """

    status = 503
