"""Training progress: the curriculum the portal counts against, entries, and summaries.

The curriculum (`training/curriculum.json`, written with the training notebooks) is the one list
of modules and exercise ids; the self-checks in a learner's kernel post each attempt here. Plain
functions, no I/O but reading the curriculum file; the store keeps the entries.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dsml.portal.exceptions import BadRequest

log = logging.getLogger("dsml.portal.training")

NOTEBOOK = re.compile(r"^[0-9]{2}-[a-z0-9-]{1,60}\.ipynb$")
"""A training notebook's file name: NN-name.ipynb."""

EXERCISE = re.compile(r"^[A-Za-z0-9._-]{1,32}$")
"""An exercise id, e.g. 01.2."""

MAX_BATCH = 500
"""Most entries one batch (an offline queue sent at once) may carry."""

FUTURE_SLACK = timedelta(days=1)
"""How far ahead of the portal's clock a kernel's timestamp may be (clocks differ)."""

ENTRY_FIELDS = ("notebook", "exercise", "passed", "timestamp")
"""What one recorded attempt may say."""


@dataclass(frozen=True)
class Module:
    """One module of the curriculum: its notebook, number, title and exercise ids."""

    number: int
    notebook: str
    title: str
    exercises: tuple[str, ...]
    minutes: int | None = None


@dataclass(frozen=True)
class Curriculum:
    """The modules in order (empty when the curriculum file is missing or unreadable)."""

    modules: tuple[Module, ...] = field(default_factory=tuple)

    def module(self, notebook: str) -> Module | None:
        """The module of a notebook, or None."""
        return next((m for m in self.modules if m.notebook == notebook), None)

    @property
    def exercise_count(self) -> int:
        """Exercises over every module."""
        return sum(len(m.exercises) for m in self.modules)


def read_curriculum(training_dir: str | Path) -> Curriculum:
    """The curriculum in `<training_dir>/curriculum.json`; an empty one (logged) if unreadable.

    A broken file must not break the progress API: entries are still recorded and listed.
    """
    path = Path(training_dir) / "curriculum.json"
    try:
        data = json.loads(path.read_text())
        modules = []
        for m in data["modules"]:
            modules.append(
                Module(
                    number=int(m["number"]),
                    notebook=str(m["notebook"]),
                    title=str(m.get("title") or m["notebook"]),
                    exercises=tuple(str(e) for e in m.get("exercises") or ()),
                    minutes=int(m["minutes"]) if m.get("minutes") is not None else None,
                )
            )
    except FileNotFoundError:
        log.warning("training: no curriculum at %s; progress is listed without modules", path)
        return Curriculum()
    except (OSError, ValueError, KeyError, TypeError) as e:
        log.warning("training: cannot read the curriculum %s: %s", path, e)
        return Curriculum()
    return Curriculum(tuple(sorted(modules, key=lambda m: m.number)))


def parse_time(value: Any, name: str, now: datetime) -> datetime:
    """An ISO 8601 time (UTC when it names no zone) as stored: UTC without tzinfo."""
    if not isinstance(value, str) or len(value) > 40:
        raise BadRequest(f"{name} must be an ISO 8601 time such as 2026-11-30T10:00:00Z")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise BadRequest(
            f"{name} {value!r} is not an ISO 8601 time such as 2026-11-30T10:00:00Z"
        ) from None
    try:
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    except OverflowError:
        raise BadRequest(f"{name} {value!r} is out of range") from None
    if parsed > now + FUTURE_SLACK:
        raise BadRequest(f"{name} {value!r} is in the future; send the time of the attempt")
    return parsed


def check_entry(data: Any, now: datetime, where: str = "") -> dict[str, Any]:
    """One attempt {notebook, exercise, passed, timestamp?} checked, or BadRequest naming the field.

    `where` prefixes field names inside a batch (`results[3].`).
    """
    if not isinstance(data, dict):
        raise BadRequest(f"{where or 'body'} must be an object with notebook, exercise, passed")
    unknown = sorted(set(data) - set(ENTRY_FIELDS))
    if unknown:
        raise BadRequest(
            f"unknown field(s) {', '.join(where + u for u in unknown)}; "
            f"allowed: {', '.join(ENTRY_FIELDS)} (or results: a list of them)"
        )
    notebook = data.get("notebook")
    if not isinstance(notebook, str) or not NOTEBOOK.fullmatch(notebook):
        raise BadRequest(
            f"{where}notebook must be a training notebook name like "
            f"01-welcome-to-jupyterlab.ipynb (NN-lowercase-name.ipynb), got {notebook!r}"[:300]
        )
    exercise = data.get("exercise")
    if not isinstance(exercise, str) or not EXERCISE.fullmatch(exercise):
        raise BadRequest(
            f"{where}exercise must be 1-32 letters, digits, '.', '_' or '-' "
            f"(e.g. 01.2), got {exercise!r}"[:300]
        )
    passed = data.get("passed")
    if not isinstance(passed, bool):
        raise BadRequest(f"{where}passed must be true or false, got {passed!r}"[:300])
    at = now
    if data.get("timestamp") is not None:
        at = parse_time(data["timestamp"], f"{where}timestamp", now)
    return {"notebook": notebook, "exercise": exercise, "passed": passed, "at": at}


def check_record(body: dict[str, Any], now: datetime) -> tuple[list[dict[str, Any]], bool]:
    """The attempts of a POST body (one entry, or a batch under "results"), and whether a batch."""
    if "results" not in body:
        return [check_entry(body, now)], False
    if set(body) != {"results"}:
        raise BadRequest(
            'a batch is {"results": [...]} alone; unknown field(s) '
            + ", ".join(sorted(set(body) - {"results"}))
        )
    results = body["results"]
    if not isinstance(results, list) or not 1 <= len(results) <= MAX_BATCH:
        raise BadRequest(f"results must be a list of 1 to {MAX_BATCH} entries")
    return [check_entry(r, now, f"results[{i}].") for i, r in enumerate(results)], True


def module_progress(curriculum: Curriculum, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per module: its exercises, how many passed and how many were attempted."""
    done = {(e["notebook"], e["exercise"]): e["passed"] for e in entries}
    out = []
    for m in curriculum.modules:
        tried = [done[(m.notebook, x)] for x in m.exercises if (m.notebook, x) in done]
        out.append(
            {
                "notebook": m.notebook,
                "number": m.number,
                "title": m.title,
                "minutes": m.minutes,
                "exercises": len(m.exercises),
                "passed": sum(1 for p in tried if p),
                "attempted": len(tried),
            }
        )
    return out


def next_module(modules: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first module with an exercise not passed yet, or None when every one is passed."""
    for m in modules:
        if m["passed"] < m["exercises"]:
            return {"notebook": m["notebook"], "number": m["number"], "title": m["title"]}
    return None


def summary(curriculum: Curriculum, user: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
    """A learner's progress as `GET /api/training/progress` shows it."""
    modules = module_progress(curriculum, entries)
    return {"user": user, "modules": modules, "next": next_module(modules), "results": entries}


def learner_row(curriculum: Curriculum, user: str, entries: list[dict[str, Any]]) -> dict:
    """A learner's line in the admins' table: totals, modules finished, last attempt."""
    modules = module_progress(curriculum, entries)
    return {
        "user": user,
        "passed": sum(m["passed"] for m in modules),
        "exercises": curriculum.exercise_count,
        "modules_done": sum(1 for m in modules if m["exercises"] and m["passed"] == m["exercises"]),
        "last": max(e["updated"] for e in entries) if entries else None,
        "modules": modules,
    }
