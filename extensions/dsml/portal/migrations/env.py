"""Alembic environment of the portal database (SQLite or PostgreSQL, same migrations).

The portal keeps its revision in its own version table, so it can share a PostgreSQL
database with the other services without clashing.
"""

from alembic import context
from sqlalchemy import engine_from_config, pool

from dsml.portal.models import Base

VERSION_TABLE = "portal_alembic_version"

config = context.config
target_metadata = Base.metadata


def run_migrations() -> None:
    """Run the migrations on the connection the caller passed, or on sqlalchemy.url."""
    options = {
        "target_metadata": target_metadata,
        "render_as_batch": True,
        "version_table": VERSION_TABLE,
    }
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, **options)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = engine_from_config(
        config.get_section(config.config_ini_section) or {},
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with engine.connect() as conn:
        context.configure(connection=conn, **options)
        with context.begin_transaction():
            context.run_migrations()


run_migrations()
