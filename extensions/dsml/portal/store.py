"""All database access of the portal: package requests.

Methods are plain synchronous SQLAlchemy calls that return dictionaries; handlers await them
through `Store.run` (dsml.service.store), so the event loop never waits on the database.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dsml.portal.exceptions import DuplicateRequest, UnknownRequest
from dsml.portal.models import OPEN, EnvRequest, utcnow
from dsml.service.store import SQLStore


class Store(SQLStore):
    """The portal database."""

    migrations = Path(__file__).parent / "migrations"

    def list_requests(
        self, user: str | None, after: int | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        """Requests newest first: one user's (or everyone's for None), ids below `after`."""
        query = select(EnvRequest).order_by(EnvRequest.id.desc()).limit(limit)
        if user is not None:
            query = query.where(EnvRequest.user == user)
        if after is not None:
            query = query.where(EnvRequest.id < after)
        with Session(self.engine) as s:
            return [row.to_dict() for row in s.scalars(query)]

    def _open_duplicate(self, s: Session, user: str, package: str, environment: str) -> Any:
        return s.scalars(
            select(EnvRequest).where(
                EnvRequest.user == user,
                EnvRequest.package == package,
                EnvRequest.environment == environment,
                EnvRequest.status == OPEN,
            )
        ).first()

    def create_request(
        self, user: str, package: str, environment: str, reason: str
    ) -> dict[str, Any]:
        """File a request (DuplicateRequest when the same one is open already)."""
        with Session(self.engine) as s:
            same = self._open_duplicate(s, user, package, environment)
            if same is not None:
                raise DuplicateRequest(
                    f"you asked for {package} in {environment} already (request {same.id}, open)"
                )
            now = utcnow()
            row = EnvRequest(
                user=user,
                package=package,
                environment=environment,
                reason=reason,
                status=OPEN,
                answer="",
                created_at=now,
                updated_at=now,
            )
            s.add(row)
            try:
                s.commit()
            except IntegrityError:
                # filed twice at the same moment: the unique index kept one
                raise DuplicateRequest(
                    f"you asked for {package} in {environment} already (open)"
                ) from None
            return row.to_dict()

    def answer_request(self, request_id: int, status: str | None, answer: str | None) -> dict:
        """Set a request's status and answer (UnknownRequest when there is no such request)."""
        with Session(self.engine) as s:
            row = s.get(EnvRequest, request_id)
            if row is None:
                raise UnknownRequest(f"no environment request {request_id}")
            who = (row.user, row.package, row.environment)
            if status is not None:
                row.status = status
            if answer is not None:
                row.answer = answer
            row.updated_at = utcnow()
            try:
                s.commit()
            except IntegrityError:
                raise DuplicateRequest(
                    f"{who[0]} has another open request for {who[1]} in {who[2]}; "
                    f"answer that one instead of reopening {request_id}"
                ) from None
            return row.to_dict()
