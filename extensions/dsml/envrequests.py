"""Requests to add a package to a curated environment: users file them, admins see and answer.

Stored in the hub database (table `dsml_env_requests`) and served by the hub under
`/hub/api/dsml/env-requests`: any signed-in user may file one and see their own; platform
admins see all and set their status.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.orm import Base
from sqlalchemy import Column, DateTime, Integer, String, Text, inspect
from tornado import web

STATUSES = ("open", "accepted", "rejected", "done")
_PACKAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9,._-]+\])?([<>=!~][^;\s]*)?$")


class EnvRequest(Base):
    """One request: who asked for which package in which environment, and its answer."""

    __tablename__ = "dsml_env_requests"

    id = Column(Integer, primary_key=True, autoincrement=True)
    user = Column(String(255), nullable=False, index=True)
    package = Column(String(255), nullable=False)
    environment = Column(String(64), nullable=False)
    reason = Column(Text, default="")
    status = Column(String(16), default="open", nullable=False)
    answer = Column(Text, default="")
    created_at = Column(DateTime, nullable=False)
    updated_at = Column(DateTime, nullable=False)

    def to_dict(self) -> dict[str, object]:
        """The request as the API shows it."""
        return {
            "id": self.id,
            "user": self.user,
            "package": self.package,
            "environment": self.environment,
            "reason": self.reason,
            "status": self.status,
            "answer": self.answer,
            "created_at": self.created_at.isoformat() + "Z",
            "updated_at": self.updated_at.isoformat() + "Z",
        }


def create_table(db) -> None:  # type: ignore[no-untyped-def]
    """Create the table in the hub database if it is not there yet."""
    if "dsml_env_requests" not in inspect(db.bind).get_table_names():
        EnvRequest.__table__.create(db.bind)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class EnvRequestsAPIHandler(APIHandler):
    """GET: my requests (admins: all); POST: file one."""

    def _is_admin(self) -> bool:
        user = self.current_user
        return bool(user) and (
            "admin:users" in self.expanded_scopes
            or any(g.name == "platform-admins" for g in getattr(user, "groups", []))
        )

    def _body(self) -> dict:
        body = self.get_json_body()
        if not isinstance(body, dict):
            raise web.HTTPError(400, "body must be a JSON object")
        return body

    async def get(self) -> None:
        """List requests, newest first."""
        if self.current_user is None:
            raise web.HTTPError(403, "sign in or send a hub API token to see requests")
        query = self.db.query(EnvRequest).order_by(EnvRequest.id.desc())
        if not self._is_admin() or self.get_argument("mine", "") == "1":
            query = query.filter(EnvRequest.user == self.current_user.name)
        self.write(json.dumps([r.to_dict() for r in query.limit(1000)]))

    async def post(self) -> None:
        """File a request: {"package": "lightgbm>=4", "environment": "datascience", "reason"}."""
        user = self.current_user
        if user is None or not hasattr(user, "groups"):
            raise web.HTTPError(403, "only users can file environment requests")
        from dsml.environments import list_environments

        body = self._body()
        package = str(body.get("package", "")).strip()
        environment = str(body.get("environment", "")).strip()
        reason = str(body.get("reason", ""))[:2000]
        if not _PACKAGE.match(package) or len(package) > 200:
            raise web.HTTPError(
                400, f"package {package!r} is not a package name (optionally with a version)"
            )
        known = [e.name for e in list_environments()]
        if environment not in known:
            raise web.HTTPError(
                400, f"environment {environment!r} is not one of {', '.join(known)}"
            )
        open_same = (
            self.db.query(EnvRequest)
            .filter_by(user=user.name, package=package, environment=environment, status="open")
            .first()
        )
        if open_same is not None:
            raise web.HTTPError(
                409,
                f"you asked for {package} in {environment} already (request {open_same.id}, open)",
            )
        now = _now()
        row = EnvRequest(
            user=user.name,
            package=package,
            environment=environment,
            reason=reason,
            status="open",
            answer="",
            created_at=now,
            updated_at=now,
        )
        self.db.add(row)
        self.db.commit()
        self.set_status(201)
        self.write(json.dumps(row.to_dict()))


class EnvRequestAPIHandler(EnvRequestsAPIHandler):
    """PATCH one request's status and answer (admins only)."""

    async def patch(self, request_id: str) -> None:
        """Body: {"status": one of STATUSES, "answer": "..."}."""
        if not self._is_admin():
            raise web.HTTPError(403, "only platform admins answer environment requests")
        row = self.db.get(EnvRequest, int(request_id))
        if row is None:
            raise web.HTTPError(404, f"no environment request {request_id}")
        body = self._body()
        status = body.get("status", row.status)
        if status not in STATUSES:
            raise web.HTTPError(400, f"status must be one of {', '.join(STATUSES)}")
        row.status = status
        row.answer = str(body.get("answer", row.answer))[:2000]
        row.updated_at = _now()
        self.db.commit()
        self.write(json.dumps(row.to_dict()))


default_handlers = [
    (r"/api/dsml/env-requests", EnvRequestsAPIHandler),
    (r"/api/dsml/env-requests/(\d+)", EnvRequestAPIHandler),
]
