"""initial schema: package requests

Revision ID: 0001
Revises:
Create Date: 2026-11-23 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "env_requests",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user", sa.String(length=255), nullable=False),
        sa.Column("package", sa.String(length=255), nullable=False),
        sa.Column("environment", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("env_requests", schema=None) as batch_op:
        batch_op.create_index("ix_env_requests_user", ["user"], unique=False)
        batch_op.create_index(
            "uq_env_requests_open",
            ["user", "package", "environment"],
            unique=True,
            sqlite_where=sa.text("status = 'open'"),
            postgresql_where=sa.text("status = 'open'"),
        )


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("env_requests", schema=None) as batch_op:
        batch_op.drop_index("uq_env_requests_open")
        batch_op.drop_index("ix_env_requests_user")
    op.drop_table("env_requests")
