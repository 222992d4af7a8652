"""training progress, usage records and daily usage snapshots

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 02:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "training_results",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user", sa.String(length=255), nullable=False),
        sa.Column("notebook", sa.String(length=80), nullable=False),
        sa.Column("exercise", sa.String(length=32), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("updated", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user", "notebook", "exercise", name="uq_training_results"),
    )
    with op.batch_alter_table("training_results", schema=None) as batch_op:
        batch_op.create_index("ix_training_results_user", ["user"], unique=False)
    op.create_table(
        "usage_users",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=True),
        sa.Column("first_login", sa.DateTime(), nullable=True),
        sa.Column("last_activity", sa.DateTime(), nullable=True),
        sa.Column("first_job", sa.DateTime(), nullable=True),
        sa.Column("first_app", sa.DateTime(), nullable=True),
        sa.Column("first_seen", sa.DateTime(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "server_starts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user", sa.String(length=255), nullable=False),
        sa.Column("server", sa.String(length=255), nullable=False),
        sa.Column("started", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user", "server", "started", name="uq_server_starts"),
    )
    with op.batch_alter_table("server_starts", schema=None) as batch_op:
        batch_op.create_index("ix_server_starts_user", ["user"], unique=False)
        batch_op.create_index("ix_server_starts_started", ["started"], unique=False)
    op.create_table(
        "usage_snapshots",
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("figures", sa.JSON(), nullable=False),
        sa.Column("updated", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("day"),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("usage_snapshots")
    with op.batch_alter_table("server_starts", schema=None) as batch_op:
        batch_op.drop_index("ix_server_starts_started")
        batch_op.drop_index("ix_server_starts_user")
    op.drop_table("server_starts")
    op.drop_table("usage_users")
    with op.batch_alter_table("training_results", schema=None) as batch_op:
        batch_op.drop_index("ix_training_results_user")
    op.drop_table("training_results")
