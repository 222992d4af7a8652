"""ids never reused; paused_reason, per-endpoint idempotency keys, run token expiry

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 21:40:00

SQLite hands out the id of a deleted row again unless the table is declared AUTOINCREMENT,
which only a rebuild of the table can add. A plain batch rebuild drops the old table, and with
foreign keys on (the store turns them on) dropping `jobs` deletes every run of every job by
cascade. So the rows are copied aside first, the old tables dropped children first (a child
never cascades), the new ones created parents first, and the rows copied back. PostgreSQL's
serial ids are never reused: there only the new columns and the new key constraint are added.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

AUTOINCREMENT = {"sqlite_autoincrement": True}
CHILDREN_FIRST = ("idempotency_keys", "run_events", "runs", "job_versions", "jobs")


def _jobs(**kw: object) -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("environment", sa.String(length=64), nullable=False),
        sa.Column("environment_version", sa.String(length=64), nullable=True),
        sa.Column("schedule", sa.String(length=255), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("catch_up", sa.String(length=16), nullable=False),
        sa.Column("catch_up_cap", sa.Integer(), nullable=False),
        sa.Column("overlap", sa.String(length=16), nullable=False),
        sa.Column("max_concurrent_runs", sa.Integer(), nullable=False),
        sa.Column("cell_timeout_seconds", sa.Integer(), nullable=True),
        sa.Column("deadline_seconds", sa.Integer(), nullable=True),
        sa.Column("retries", sa.Integer(), nullable=False),
        sa.Column("retry_backoff_seconds", sa.Integer(), nullable=False),
        sa.Column("retry_on_user_error", sa.Boolean(), nullable=False),
        sa.Column("keep_runs", sa.Integer(), nullable=True),
        sa.Column("keep_days", sa.Integer(), nullable=True),
        sa.Column("notify", sa.JSON(), nullable=False),
        sa.Column("shared_with", sa.JSON(), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("paused_reason", sa.Text(), nullable=True),
        sa.Column("next_run_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("owner", "name", name="uq_jobs_owner_name"),
        **kw,
    )
    op.create_index("ix_jobs_next_run_at", "jobs", ["next_run_at"])
    op.create_index("ix_jobs_owner", "jobs", ["owner"])


def _job_versions(**kw: object) -> None:
    op.create_table(
        "job_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("notebook_name", sa.String(length=255), nullable=False),
        sa.Column("notebook", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("parameter_schema", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job_id", "version", name="uq_job_versions"),
        **kw,
    )
    op.create_index("ix_job_versions_job_id", "job_versions", ["job_id"])


def _runs(**kw: object) -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("job_version", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("scheduled_for", sa.DateTime(), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("retry_of", sa.Integer(), nullable=True),
        sa.Column("not_before", sa.DateTime(), nullable=True),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("environment", sa.String(length=64), nullable=False),
        sa.Column("environment_version", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("deadline_at", sa.DateTime(), nullable=True),
        sa.Column("cell_index", sa.Integer(), nullable=True),
        sa.Column("cell_count", sa.Integer(), nullable=True),
        sa.Column("error_cell", sa.Integer(), nullable=True),
        sa.Column("executed_error_cell", sa.Integer(), nullable=True),
        sa.Column("error_name", sa.String(length=255), nullable=True),
        sa.Column("error_value", sa.Text(), nullable=True),
        sa.Column("failure_kind", sa.String(length=16), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("log_tail", sa.Text(), nullable=True),
        sa.Column("executor", sa.String(length=32), nullable=True),
        sa.Column("executor_ref", sa.JSON(), nullable=True),
        sa.Column("token_hash", sa.String(length=64), nullable=True),
        sa.Column("token_expires_at", sa.DateTime(), nullable=True),
        sa.Column("has_output", sa.Boolean(), nullable=False),
        sa.Column("output_bytes", sa.Integer(), nullable=False, server_default="0"),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job_id", "scheduled_for", "attempt", name="uq_runs_tick"),
        **kw,
    )
    op.create_index("ix_runs_job_id_id", "runs", ["job_id", "id"])
    op.create_index("ix_runs_owner", "runs", ["owner"])
    op.create_index("ix_runs_state", "runs", ["state"])


def _run_events(**kw: object) -> None:
    op.create_table(
        "run_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        **kw,
    )
    op.create_index("ix_run_events_run_id", "run_events", ["run_id"])


def _idempotency_keys(**kw: object) -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("endpoint", sa.String(length=255), nullable=False, server_default=""),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("resource_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("owner", "endpoint", "key", name="uq_idempotency_endpoint"),
        **kw,
    )


CREATE = {
    "jobs": _jobs,
    "job_versions": _job_versions,
    "runs": _runs,
    "run_events": _run_events,
    "idempotency_keys": _idempotency_keys,
}


def _columns(table: str) -> list[str]:
    rows = op.get_bind().exec_driver_sql(f"PRAGMA table_info({table})").all()
    return [row[1] for row in rows]


def _rebuild_sqlite(**kw: object) -> None:
    """Copy every table aside, drop the old ones children first, create and refill them."""
    kept = {}
    for table in CHILDREN_FIRST:
        kept[table] = _columns(table)
        op.execute(f"CREATE TEMP TABLE _keep_{table} AS SELECT * FROM {table}")
    for table in CHILDREN_FIRST:
        op.drop_table(table)
    for table in reversed(CHILDREN_FIRST):
        CREATE[table](**kw)
        columns = ", ".join(f'"{c}"' for c in kept[table])
        op.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM _keep_{table}")
        op.execute(f"DROP TABLE _keep_{table}")


def upgrade() -> None:
    """AUTOINCREMENT ids (SQLite), and the new columns everywhere."""
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite(**AUTOINCREMENT)
        return
    op.add_column("jobs", sa.Column("paused_reason", sa.Text(), nullable=True))
    op.add_column("runs", sa.Column("executed_error_cell", sa.Integer(), nullable=True))
    op.add_column("runs", sa.Column("token_expires_at", sa.DateTime(), nullable=True))
    op.add_column(
        "runs", sa.Column("output_bytes", sa.Integer(), nullable=False, server_default="0")
    )
    op.add_column(
        "idempotency_keys",
        sa.Column("endpoint", sa.String(length=255), nullable=False, server_default=""),
    )
    op.drop_constraint("uq_idempotency", "idempotency_keys", type_="unique")
    op.create_unique_constraint(
        "uq_idempotency_endpoint", "idempotency_keys", ["owner", "endpoint", "key"]
    )


def downgrade() -> None:
    """Drop the new columns (PostgreSQL); on SQLite a rebuild would cascade: restore a backup."""
    if op.get_bind().dialect.name == "sqlite":
        raise NotImplementedError(
            "the scheduler database cannot go below revision 0003 on SQLite; restore the copy "
            "taken before the upgrade"
        )
    with op.batch_alter_table("idempotency_keys") as batch:
        batch.drop_constraint("uq_idempotency_endpoint", type_="unique")
        batch.drop_column("endpoint")
        batch.create_unique_constraint("uq_idempotency", ["owner", "key"])
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("output_bytes")
        batch.drop_column("token_expires_at")
        batch.drop_column("executed_error_cell")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("paused_reason")
