"""All database access of the portal: package requests, training progress, usage records.

Methods are plain synchronous SQLAlchemy calls that return dictionaries; handlers await them
through `Store.run` (dsml.service.store), so the event loop never waits on the database.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dsml.portal.exceptions import DuplicateRequest, UnknownRequest
from dsml.portal.models import (
    OPEN,
    EnvRequest,
    ServerStart,
    TrainingResult,
    UsageSnapshot,
    UsageUser,
    iso,
    utcnow,
)
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

    # training progress

    def record_results(self, user: str, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Record attempts of `user` (checked entries with an `at` time); the stored rows.

        One row per (user, notebook, exercise): passed stays true once true, attempts counts,
        updated is the latest attempt's time. Concurrent calls add up (on PostgreSQL the rows
        are locked, in one order, before they are read); a row two calls created at once is
        added to by the second.
        """
        try:
            return self._record_results(user, entries)
        except IntegrityError:
            # another call inserted one of the rows first: it exists now, lock and add to it
            return self._record_results(user, entries)

    def _record_results(self, user: str, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        with Session(self.engine) as s:
            rows: dict[tuple[str, str], TrainingResult] = {}
            # FOR UPDATE, keys sorted: no lost attempt, no deadlock between two batches
            for notebook, exercise in sorted({(e["notebook"], e["exercise"]) for e in entries}):
                rows[(notebook, exercise)] = s.scalars(
                    select(TrainingResult)
                    .where(
                        TrainingResult.user == user,
                        TrainingResult.notebook == notebook,
                        TrainingResult.exercise == exercise,
                    )
                    .with_for_update()
                ).first()
            for e in entries:
                key = (e["notebook"], e["exercise"])
                row = rows[key]
                if row is None:
                    row = TrainingResult(
                        user=user,
                        notebook=e["notebook"],
                        exercise=e["exercise"],
                        passed=False,
                        attempts=0,
                        created=e["at"],
                        updated=e["at"],
                    )
                    s.add(row)
                rows[key] = row
                row.passed = bool(row.passed) or e["passed"]
                row.attempts = (row.attempts or 0) + 1
                row.created = min(row.created, e["at"])
                row.updated = max(row.updated, e["at"])
            # read before the commit: a read after it could fail (server gone) once written
            stored = [rows[(e["notebook"], e["exercise"])].to_dict() for e in entries]
            s.commit()
            return stored

    def results_of(self, user: str) -> list[dict[str, Any]]:
        """A learner's entries, by notebook and exercise."""
        query = (
            select(TrainingResult)
            .where(TrainingResult.user == user)
            .order_by(TrainingResult.notebook, TrainingResult.exercise)
        )
        with Session(self.engine) as s:
            return [row.to_dict() for row in s.scalars(query)]

    def all_results(self) -> dict[str, list[dict[str, Any]]]:
        """Every learner's entries, by learner name."""
        query = select(TrainingResult).order_by(
            TrainingResult.user, TrainingResult.notebook, TrainingResult.exercise
        )
        out: dict[str, list[dict[str, Any]]] = {}
        with Session(self.engine) as s:
            for row in s.scalars(query):
                out.setdefault(row.user, []).append(row.to_dict())
        return out

    # usage records

    def observe_users(self, users: list[dict[str, Any]], now: datetime) -> int:
        """Record what a poll of the hub's users shows; the number of new server starts.

        `users`: {name, created, last_activity, starts: [(server, started)]} with naive UTC
        times. A user first seen with activity already logged in before the portal watched:
        their first login is the hub's `created`; one seen idle, then active, logged in at
        their `last_activity`. Users the hub no longer lists are marked deleted (kept for the
        medians).
        """
        new_starts = 0
        with Session(self.engine) as s:
            known = {u.name: u for u in s.scalars(select(UsageUser))}
            for u in users:
                row = known.get(u["name"])
                if row is None:
                    row = UsageUser(name=u["name"], first_seen=now, deleted=False)
                    s.add(row)
                    if u["last_activity"] is not None:
                        row.first_login = min(
                            u["created"] or u["last_activity"], u["last_activity"]
                        )
                elif row.first_login is None and u["last_activity"] is not None:
                    row.first_login = u["last_activity"]
                row.created = u["created"]
                row.last_activity = u["last_activity"]
                row.deleted = False
                seen = set(
                    s.execute(
                        select(ServerStart.server, ServerStart.started).where(
                            ServerStart.user == u["name"]
                        )
                    ).all()
                )
                for server, started in u["starts"]:
                    if (server, started) not in seen:
                        s.add(ServerStart(user=u["name"], server=server, started=started))
                        new_starts += 1
            listed = {u["name"] for u in users}
            for name, row in known.items():
                if name not in listed:
                    row.deleted = True
            s.commit()
        return new_starts

    def observe_firsts(
        self, first_jobs: dict[str, datetime], first_apps: dict[str, datetime], now: datetime
    ) -> None:
        """Keep each user's earliest job and app ever seen (a deleted job keeps its date)."""
        with Session(self.engine) as s:
            known = {u.name: u for u in s.scalars(select(UsageUser))}
            for attr, firsts in (("first_job", first_jobs), ("first_app", first_apps)):
                for name, at in firsts.items():
                    row = known.get(name)
                    if row is None:
                        row = known[name] = UsageUser(name=name, first_seen=now, deleted=False)
                        s.add(row)
                    old = getattr(row, attr)
                    if old is None or at < old:
                        setattr(row, attr, at)
            s.commit()

    def usage_users(self) -> list[dict[str, Any]]:
        """Every user the portal knows (deleted ones too, flagged) with their servers started."""
        with Session(self.engine) as s:
            starts = dict(
                s.execute(
                    select(ServerStart.user, func.count(ServerStart.id)).group_by(ServerStart.user)
                ).all()
            )
            return [
                {
                    "user": u.name,
                    "created": u.created,
                    "first_login": u.first_login,
                    "last_activity": u.last_activity,
                    "first_job": u.first_job,
                    "first_app": u.first_app,
                    "deleted": bool(u.deleted),
                    "servers_started": int(starts.get(u.name, 0)),
                }
                for u in s.scalars(select(UsageUser).order_by(UsageUser.name))
            ]

    def count_server_starts(self, since: datetime | None = None) -> int:
        """Server starts recorded (since a time, or ever)."""
        query = select(func.count(ServerStart.id))
        if since is not None:
            query = query.where(ServerStart.started >= since)
        with Session(self.engine) as s:
            return int(s.scalar(query) or 0)

    def save_snapshot(self, day: str, figures: dict[str, Any]) -> None:
        """Write (or rewrite) the figures of one day."""
        with Session(self.engine) as s:
            row = s.get(UsageSnapshot, day)
            if row is None:
                row = UsageSnapshot(day=day, figures=figures, updated=utcnow())
                s.add(row)
            row.figures = figures
            row.updated = utcnow()
            s.commit()

    def snapshots(self, since_day: str) -> list[dict[str, Any]]:
        """Daily figures from `since_day` (YYYY-MM-DD) on, oldest first."""
        query = (
            select(UsageSnapshot).where(UsageSnapshot.day >= since_day).order_by(UsageSnapshot.day)
        )
        with Session(self.engine) as s:
            return [
                {"day": r.day, "figures": r.figures, "updated": iso(r.updated)}
                for r in s.scalars(query)
            ]

    def latest_snapshot(self) -> dict[str, Any] | None:
        """The newest day's figures (what a missing source's part is filled from), or None."""
        query = select(UsageSnapshot).order_by(UsageSnapshot.day.desc()).limit(1)
        with Session(self.engine) as s:
            row = s.scalars(query).first()
            return None if row is None else {"day": row.day, "figures": row.figures}
