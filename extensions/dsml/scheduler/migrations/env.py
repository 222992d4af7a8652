"""Alembic environment of the scheduler database (SQLite or PostgreSQL, same migrations)."""

from dsml.scheduler.models import Base
from dsml.service.migrations import run_migrations

run_migrations(Base.metadata)
