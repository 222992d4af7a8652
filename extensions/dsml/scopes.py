"""The platform's rights, as JupyterHub custom scopes: one home for every admin check.

The hub defines these scopes (`c.JupyterHub.custom_scopes`) and grants them through roles:
`platform-admins` get the admin ones, the groups that may use JupyterLab get `jobs:run`. A
service learns what a caller may do from the scopes of the caller's token, which the hub
returns with the user model (`model["scopes"]`). A token is only as strong as the scopes it
was given: an admin's JupyterLab server token carries none of the admin scopes, so code in an
admin's kernel is an ordinary user to the services.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from dsml.client import APPS, PORTAL, SCHEDULER

JOBS_RUN = "custom:dsml:jobs:run"
"""Create and run scheduled notebook jobs of one's own."""

JOBS_ADMIN = "custom:dsml:jobs:admin"
"""See, change, cancel and delete every user's jobs and runs."""

ENV_REQUESTS_ADMIN = "custom:dsml:env-requests:admin"
"""See every package request and answer them."""

HEALTH_READ = "custom:dsml:health:read"
"""Read the per-part detail of the platform's health check."""

APPS_ADMIN = "custom:dsml:apps:admin"
"""See, change, share, stop and delete every user's apps."""

JOBS_READ = "custom:dsml:jobs:read"
"""List every user's jobs and runs, and nothing more (the portal's usage figures)."""

APPS_READ = "custom:dsml:apps:read"
"""List every user's apps with their versions and view counts, and nothing more (the portal's
usage figures)."""

USAGE_ADMIN = "custom:dsml:usage:admin"
"""Read per-user usage tables and every learner's training progress."""

CUSTOM_SCOPES: dict[str, dict[str, str]] = {
    JOBS_RUN: {"description": "Create and run your own scheduled notebook jobs."},
    JOBS_ADMIN: {"description": "See, change, cancel and delete every user's jobs and runs."},
    ENV_REQUESTS_ADMIN: {"description": "See and answer every package request."},
    HEALTH_READ: {"description": "Read the platform's per-part health detail."},
    APPS_ADMIN: {"description": "See, change, share, stop and delete every user's apps."},
    JOBS_READ: {"description": "List every user's jobs and runs (read-only)."},
    APPS_READ: {"description": "List every user's apps, their versions and views (read-only)."},
    USAGE_ADMIN: {
        "description": "Read per-user usage tables and every learner's training progress."
    },
}
"""What `c.JupyterHub.custom_scopes` gets."""

ADMIN_SCOPES = [JOBS_ADMIN, ENV_REQUESTS_ADMIN, HEALTH_READ, APPS_ADMIN, USAGE_ADMIN]
"""Granted to platform-admins (through the `platform-admin` role)."""

LAB_SCOPES = [JOBS_RUN]
"""Granted to the groups that may use JupyterLab (through the `lab-user` role)."""


SERVICE_USER_SCOPES = [
    "read:users:name!user",
    "read:users:groups!user",
    f"access:services!service={SCHEDULER}",
    f"access:services!service={PORTAL}",
    f"access:services!service={APPS}",
]
"""What a token acting for its user needs of the platform's services: who they are, and access
to the scheduler, the portal and the apps service. A scheduled run's token has exactly these
(plus LAB_SCOPES)."""

SERVER_TOKEN_SCOPES = [
    "access:servers!server",
    "users:activity!user",
    *SERVICE_USER_SCOPES,
    # the server's owner may run jobs; no admin scope ever reaches a server token
    *LAB_SCOPES,
]
"""What a user server's token holds (`c.Spawner.server_token_scopes`): JupyterLab's Notebook
Jobs and `dsml run` call the services with it."""


def scopes_of(model: Mapping[str, Any] | None) -> set[str]:
    """The scopes of the token behind a hub user model (empty for no model)."""
    if not model:
        return set()
    return set(model.get("scopes") or ())


def has_scope(model: Mapping[str, Any] | None, scope: str) -> bool:
    """Whether the token behind `model` holds `scope` (JupyterHub expands roles for us)."""
    return scope in scopes_of(model)


def any_scope(model: Mapping[str, Any] | None, scopes: Iterable[str]) -> bool:
    """Whether the token behind `model` holds at least one of `scopes`."""
    return bool(scopes_of(model) & set(scopes))
