"""A service's own database: SQLAlchemy engine, Alembic migrations, calls off the event loop.

Store methods are plain synchronous SQLAlchemy calls that open and close their own session;
handlers await them through `SQLStore.run`, which runs them on the store's own thread(s), so
the event loop never waits on the database. SQLite (the default) gets one writer thread and
WAL; PostgreSQL gets a few threads and connection checks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine

T = TypeVar("T")


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
        is_sqlite = url.startswith("sqlite")
        self.engine: Engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30} if is_sqlite else {},
            pool_pre_ping=not is_sqlite,
        )
        if is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
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
        """Run a store method on the store's thread and await its result."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))

    def close(self) -> None:
        """Release connections and the worker thread."""
        self._pool.shutdown(wait=True)
        self.engine.dispose()
