"""Errors of the scheduler service; each carries the HTTP status the API answers with."""

from __future__ import annotations


class SchedulerError(Exception):
    """An error fit to show the caller on one line, with its HTTP status."""

    status = 400

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        if status is not None:
            self.status = status


class BadRequest(SchedulerError):
    """The request is malformed or names a value that is not allowed (400)."""

    status = 400


class Forbidden(SchedulerError):
    """The caller may not do this (403)."""

    status = 403


class NotFound(SchedulerError):
    """No such job or run, or not one the caller may see (404)."""

    status = 404


class Conflict(SchedulerError):
    """The request conflicts with the current state, e.g. cancelling a finished run (409)."""

    status = 409


class TooLarge(SchedulerError):
    """A notebook or an output is over the configured size limit (413)."""

    status = 413


class InvalidTransition(Conflict):
    """A run cannot move from its current state to the one asked for."""
