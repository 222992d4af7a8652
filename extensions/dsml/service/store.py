"""A service's own database: SQLAlchemy engine, Alembic migrations, calls off the event loop.

Store methods are plain synchronous SQLAlchemy calls that open and close their own session;
handlers await them through `SQLStore.run`, which runs them on the store's own thread(s), so
the event loop never waits on the database. SQLite (the default) gets one writer thread and
WAL; PostgreSQL gets a few threads, connection checks, and retries while the server restarts.

A database that stays busy (SQLite locked by another writer past the busy timeout) or
unreachable (PostgreSQL down past the retries) is the service's `Unavailable` (503, "try
again"), not a server error: the call did nothing, and the caller may send it again.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import InterfaceError, OperationalError

from dsml.service.exceptions import Unavailable

T = TypeVar("T")

log = logging.getLogger(__name__)

RETRY_SECONDS = 30.0
"""How long a store call on PostgreSQL is retried while the server is unreachable, in seconds."""

BUSY_SECONDS = 30.0
"""How long a SQLite call waits for another writer's lock, in seconds (`?timeout=` in the URL
sets another)."""

_SQLITE_BUSY = ("database is locked", "database table is locked", "database is busy")
"""What SQLite says when another connection holds the lock past the busy timeout."""


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class SQLStore:
    """Base of a service's store; subclasses set `migrations` and add their methods."""

    migrations: Path
    """Folder of the service's Alembic environment (env.py, versions/)."""

    def __init__(self, url: str):
        self.url = url
        self.is_sqlite = is_sqlite = url.startswith("sqlite")
        self.retry_seconds = RETRY_SECONDS
        # the busy timeout: the URL's `?timeout=` (an admin's choice) or BUSY_SECONDS
        self.busy_seconds = BUSY_SECONDS
        connect_args: dict[str, Any] = {}
        if is_sqlite:
            self.busy_seconds = float(make_url(url).query.get("timeout") or BUSY_SECONDS)
            connect_args = {"check_same_thread": False, "timeout": self.busy_seconds}
        self.engine: Engine = create_engine(
            url, connect_args=connect_args, pool_pre_ping=not is_sqlite
        )
        if is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        # whether the call running on this thread has sent a COMMIT (then it is not retried)
        self._calls = threading.local()
        event.listen(self.engine, "commit", self._commit_sent)
        # SQLite allows one writer: one thread keeps writes in order; PostgreSQL takes more
        self._pool = ThreadPoolExecutor(1 if is_sqlite else 4, thread_name_prefix="store")

    def migrate(self) -> None:
        """Create or upgrade the schema to the newest Alembic revision."""
        config = Config()
        config.set_main_option("script_location", str(self.migrations))
        with self.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a store method on the store's thread and await its result.

        On PostgreSQL a call that lost its connection (the server restarting, a failover)
        before it sent a COMMIT is run again, for up to `RETRY_SECONDS`: the server rolled its
        transaction back, so running it again writes it once. A call cut after its COMMIT was
        sent may have written: it fails rather than risk writing twice.

        Raises `Unavailable` when SQLite stayed locked past its busy timeout, or PostgreSQL
        stayed unreachable past the retries (the call wrote nothing: a caller may try again).
        """
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + self.retry_seconds
        delay = 0.1
        while True:
            try:
                return await loop.run_in_executor(self._pool, self._call, fn, args, kwargs)
            except (OperationalError, InterfaceError) as e:
                if self._busy(e):
                    log.warning("database busy: %s", str(e.orig).strip()[:200])
                    raise Unavailable(
                        f"the database is busy: another writer held its lock for over "
                        f"{self.busy_seconds:g} s; try again"
                    ) from e
                lost = self._lost_connection(e)
                if getattr(e, "dsml_after_commit", False) or not lost:
                    raise
                if time.monotonic() + delay > deadline:
                    log.error("database unreachable for %g s: %s", self.retry_seconds, e.orig)
                    raise Unavailable(
                        f"the database is unreachable (tried for {self.retry_seconds:g} s); "
                        "try again"
                    ) from e
                log.warning("database unreachable (%s), retrying", str(e.orig).strip()[:200])
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    def _busy(self, error: OperationalError | InterfaceError) -> bool:
        """Whether `error` is SQLite's "database is locked": another writer kept the lock."""
        return self.is_sqlite and any(text in str(error.orig).lower() for text in _SQLITE_BUSY)

    def _commit_sent(self, _connection: Any) -> None:
        self._calls.commit_sent = True

    def _call(self, fn: Callable[..., T], args: tuple, kwargs: dict[str, Any]) -> T:
        """Run `fn` on this thread; mark a lost connection that came after a COMMIT was sent."""
        self._calls.commit_sent = False
        try:
            return fn(*args, **kwargs)
        except (OperationalError, InterfaceError) as e:
            e.dsml_after_commit = self._calls.commit_sent  # type: ignore[attr-defined]
            raise

    def _lost_connection(self, error: OperationalError | InterfaceError) -> bool:
        """Whether `error` says the server went away (worth a retry), not that the call was bad.

        SQLite's errors (locked, disk full) do not pass by waiting a few seconds. On PostgreSQL:
        a connection SQLAlchemy saw drop, one refused before the server answered (no SQLSTATE),
        a connection exception (class 08) or the server shutting down or starting (57P01-57P03).
        """
        if self.is_sqlite:
            return False
        # psycopg 3 names the SQLSTATE `sqlstate`, psycopg2 `pgcode`
        code = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
        return (
            error.connection_invalidated
            or code is None
            or code.startswith("08")
            or code in ("57P01", "57P02", "57P03")
        )

    def close(self) -> None:
        """Release connections and the worker thread."""
        self._pool.shutdown(wait=True)
        self.engine.dispose()
