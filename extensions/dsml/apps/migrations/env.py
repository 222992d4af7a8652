"""Alembic environment of the apps database (SQLite or PostgreSQL, same migrations).

The apps service keeps its revision in its own version table, so it can share a PostgreSQL
database with the other services without clashing.
"""

from dsml.apps.models import Base
from dsml.service.migrations import run_migrations

run_migrations(Base.metadata, version_table="apps_alembic_version")
