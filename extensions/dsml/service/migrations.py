"""What every service's Alembic `env.py` does: run its migrations on the store's connection.

`SQLStore.migrate` hands Alembic an open connection (`config.attributes["connection"]`); the
`alembic` command line gives a URL instead. Each service keeps its revision in its own version
table, so services can share one PostgreSQL database.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import MetaData, engine_from_config, pool


def run_migrations(metadata: MetaData, version_table: str = "alembic_version") -> None:
    """Run the migrations on the connection the caller passed, or on sqlalchemy.url."""
    config = context.config
    options = {
        "target_metadata": metadata,
        "render_as_batch": True,  # SQLite alters tables by copying them
        "version_table": version_table,
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
