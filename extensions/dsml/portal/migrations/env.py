"""Alembic environment of the portal database (SQLite or PostgreSQL, same migrations).

The portal keeps its revision in its own version table, so it can share a PostgreSQL
database with the other services without clashing.
"""

from dsml.portal.models import Base
from dsml.service.migrations import run_migrations

run_migrations(Base.metadata, version_table="portal_alembic_version")
