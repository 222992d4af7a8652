"""Training progress: learners record attempts from their kernels and read their own.

A user server's token works (it holds `access:services!service=portal`); an admin (a token with
`custom:dsml:usage:admin`) reads anyone's progress and the table of every learner.
"""

from __future__ import annotations

from dsml.portal.exceptions import BadRequest, Forbidden
from dsml.portal.training import check_record
from dsml.scopes import USAGE_ADMIN
from dsml.service.handlers import APIHandler

MAX_NAME = 255
"""Longest user name the hub allows."""


class ProgressHandler(APIHandler):
    """GET: my progress (admins: anyone's with ?user=); POST: record an attempt or a batch."""

    async def get(self) -> None:
        """{"user", "modules", "next", "results"}."""
        caller = self.user()
        name = self.get_argument("user", None)
        if caller.get("kind", "user") != "user" and not self.has_scope(USAGE_ADMIN):
            # a service learns nothing: progress is recorded for users only
            raise Forbidden(
                f"training progress belongs to users; {caller.get('kind')} {caller['name']} "
                f"needs the {USAGE_ADMIN} scope to read it"
            )
        if name is None or name == caller["name"]:
            name = caller["name"]
        elif not self.has_scope(USAGE_ADMIN):
            raise Forbidden(
                f"reading another learner's progress needs a token with the {USAGE_ADMIN} "
                "scope (platform admins); without it, leave out ?user= to read your own"
            )
        if not 1 <= len(name) <= MAX_NAME:
            raise BadRequest(f"user must be a user name of 1-{MAX_NAME} characters")
        self.set_header("Cache-Control", "no-store")
        self.write_json(await self.service_app.training_summary(name))

    async def post(self) -> None:
        """Body: {"notebook", "exercise", "passed", "timestamp"?} or {"results": [...]}."""
        caller = self.user()
        if caller.get("kind", "user") != "user":
            raise Forbidden(
                f"progress is recorded for users; this token belongs to "
                f"{caller.get('kind')} {caller['name']}"
            )
        app = self.service_app
        entries, batch = check_record(self.body(), app.now())
        rows = await app.record_progress(caller["name"], entries)
        self.write_json({"recorded": len(rows)} if batch else rows[0], status=201)


class LearnersHandler(APIHandler):
    """GET: every learner's progress (admins only)."""

    async def get(self) -> None:
        """{"learners": [{"user", "passed", "exercises", "modules_done", "last", "modules"}]}."""
        self.user()
        if not self.has_scope(USAGE_ADMIN):
            raise Forbidden(
                f"the learners' table needs a token with the {USAGE_ADMIN} scope "
                "(platform admins); GET /api/training/progress shows your own progress"
            )
        self.set_header("Cache-Control", "no-store")
        self.write_json({"learners": await self.service_app.learners()})


default_handlers = [
    (r"/api/training/progress", ProgressHandler),
    (r"/api/training/learners", LearnersHandler),
]
