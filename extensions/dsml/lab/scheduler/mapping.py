"""How jupyter-scheduler's models map onto the scheduler service's jobs and runs.

A jupyter-scheduler *job definition* is a service job with a cron schedule (`job-<n>`); a
jupyter-scheduler *job* is a service run (`run-<n>`). Ids, states, times, parameters, sorting,
paging and environment names are translated here, with no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

from jupyter_scheduler.exceptions import SchedulerError
from jupyter_scheduler.models import (
    SortDirection,
    SortField,
    Status,
)

from dsml.kernels import environment_of
from dsml.parameters import ParameterError, read_cli_value

OUTPUT_FORMATS = {"ipynb": "Notebook", "html": "HTML"}
"""Every run keeps both; the UI's format choice does not change what the service stores."""

JOB_PREFIX = "job-"
RUN_PREFIX = "run-"
AD_HOC_SUFFIX = " (ad hoc)"
"""Suffix of the unscheduled service job behind "Run now" (the same name `dsml run` uses)."""

PAGE_LIMIT = 500
"""The service's largest page size."""

STATUS_OF_STATE = {
    "queued": Status.QUEUED,
    "starting": Status.IN_PROGRESS,
    "running": Status.IN_PROGRESS,
    "succeeded": Status.COMPLETED,
    "failed": Status.FAILED,
    "timed_out": Status.FAILED,
    "lost": Status.FAILED,
    "cancelled": Status.STOPPED,
    "skipped": Status.STOPPED,
}
"""jupyter-scheduler's status of each service run state."""


def states_of(status: Status) -> tuple[str, ...]:
    """The service run states shown as `status` (none for CREATED and STOPPING)."""
    return tuple(state for state, shown in STATUS_OF_STATE.items() if shown == status)


class ServiceError(SchedulerError):
    """The scheduler service refused a request, or could not be reached; carries its status."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


# What the Create Job dialog sends as `runtime_environment_name` (jupyter-scheduler 2.12.1,
# @jupyterlab/scheduler's create-job form): when it opens it fetches GET /scheduler/
# runtime_environments and, the notebook's environment being unknown to it, sets the model's
# environment to the *name* of the first environment listed. Its Environment list is an MUI
# Select whose items show each environment's `name` but carry its `label` as their value, so a
# person picking from the list sends the *label*, and the Select shows a value as selected
# only when it equals some item's label. Hence `RuntimeEnvironment.label == name` (the
# service's name; the display name goes into the description, the items' tooltip), or nothing
# is ever shown pre-selected. Older clients, the REST API and jobs saved by other front ends
# may still send a display name or a kernel name (`dsml-datascience`), so whatever arrives is
# mapped back to the service's name here, in the bridge, before any call to the service: the
# dialog is upstream code we do not fork, and the service accepts only its own names.


def environment_name(sent: str | None, environments: list[dict[str, Any]]) -> str | None:
    """The service's name of the environment a client named by name, display name or kernel.

    `environments` are the service's records (`name`, `display_name`, `kernel`); None when
    `sent` matches none of them (the service then refuses it, naming the curated ones).
    """
    if not sent:
        return None
    wanted = sent.strip()
    names = [env["name"] for env in environments]
    if wanted in names:
        return wanted
    for env in environments:
        if wanted in (env.get("display_name"), env.get("kernel")):
            return env["name"]
    by_kernel = environment_of(wanted)
    if by_kernel in names:
        return by_kernel
    lowered = [
        env for env in environments if (env.get("display_name") or "").lower() == wanted.lower()
    ]
    return lowered[0]["name"] if len(lowered) == 1 else None


def first_environment(
    environments: list[dict[str, Any]], preferred: str | None
) -> list[dict[str, Any]]:
    """The service's environments with `preferred` first: the dialog pre-selects the first."""
    first = [env for env in environments if env["name"] == preferred]
    return first + [env for env in environments if env["name"] != preferred]


def page_path(referer: str | None, base_url: str) -> str | None:
    """The file or folder a JupyterLab page shows, from its URL; None for any other page.

    JupyterLab keeps the path of the file browser's folder, or of the document in front, in its
    URL (`<base>lab/tree/<path>`, `<base>lab/workspaces/<ws>/tree/<path>`, `<base>doc/tree/
    <path>`; Notebook 7: `<base>tree/<path>`, `<base>notebooks/<path>`), and the browser sends
    that URL as the Referer of the dialog's calls. It is a hint, never a permission: the path
    is read through the server's contents manager, which keeps to the server's root.
    """
    if not referer:
        return None
    path = unquote(urlsplit(referer).path)
    if not path.startswith(base_url):
        return None
    rest = "/" + path[len(base_url) :].lstrip("/")
    for marker in ("/tree/", "/notebooks/"):
        if marker in rest:
            found = rest.split(marker, 1)[1].strip("/")
            segments = found.split("/")
            if found and ".." not in segments and "" not in segments:
                return found
            return None
    return None


def _ms(iso: str | None) -> int | None:
    """Epoch milliseconds (what jupyter-scheduler shows) of the service's ISO UTC timestamps."""
    if not iso:
        return None
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _text(value: Any) -> str:
    """A typed parameter value as the text the UI edits (and `read_cli_value` reads back)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def _texts(values: dict[str, Any] | None) -> dict[str, str]:
    return {name: _text(value) for name, value in (values or {}).items()}


def typed_parameters(
    schema: dict[str, dict[str, Any]], values: dict[str, str] | None
) -> dict[str, Any]:
    """The UI's text values read by each parameter's declared type, as `dsml run -p` reads them."""
    typed: dict[str, Any] = {}
    for name, raw in (values or {}).items():
        try:
            typed[name] = read_cli_value(schema, name, raw)
        except ParameterError as e:
            raise ServiceError(400, str(e)) from None
    return typed


def _number(identifier: str, prefix: str, what: str) -> int:
    """The service id inside a UI id such as `job-12` (404 for anything else)."""
    number = identifier[len(prefix) :] if identifier.startswith(prefix) else ""
    if not number.isdigit():
        raise ServiceError(404, f"no {what} {identifier!r}: ids here look like '{prefix}12'")
    return int(number)


def _sorted(models: list[Any], sort_by: Iterable[SortField]) -> list[Any]:
    """Sort by several fields (the first one wins), missing values last."""
    fields = list(sort_by)
    for field in fields:
        if models and field.name not in type(models[0]).__fields__:
            raise ServiceError(400, f"cannot sort by {field.name!r}: it is not a field of a job")
    for field in reversed(fields):
        present = [m for m in models if getattr(m, field.name) is not None]
        missing = [m for m in models if getattr(m, field.name) is None]
        present.sort(
            key=lambda m, f=field.name: getattr(m, f),
            reverse=field.direction == SortDirection.desc,
        )
        models = present + missing
    return models


def _page(models: list[Any], query: Any) -> tuple[list[Any], str | None]:
    """Slice of the listing that query.next_token (an offset) and query.max_items ask for."""
    try:
        start = int(query.next_token) if query.next_token else 0
    except ValueError:
        raise ServiceError(400, f"next_token must be a number, got {query.next_token!r}") from None
    size = query.max_items if query.max_items is not None else len(models)
    end = start + max(size, 0)
    return models[start:end], (str(end) if end < len(models) else None)
