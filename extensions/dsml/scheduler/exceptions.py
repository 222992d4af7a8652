"""Errors of the scheduler service; each carries the HTTP status the API answers with.

They are the services' shared errors (`dsml.service.exceptions`), which the handlers' base
turns into JSON `{status, message}`; the scheduler adds the state machine's own.
"""

from __future__ import annotations

from dsml.service.exceptions import BadRequest, Conflict, Forbidden, NotFound, TooLarge
from dsml.service.exceptions import ServiceError as SchedulerError

__all__ = [
    "BadRequest",
    "Conflict",
    "Forbidden",
    "InvalidTransition",
    "NotFound",
    "SchedulerError",
    "TooLarge",
]


class InvalidTransition(Conflict):
    """A run cannot move from its current state to the one asked for."""
