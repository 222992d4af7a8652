"""jobs and runs record the environment version they use

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 08:15:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add environment_version to jobs and runs (null: the environment's current version)."""
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("environment_version", sa.String(length=64), nullable=True))
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("environment_version", sa.String(length=64), nullable=True))


def downgrade() -> None:
    """Drop the columns again."""
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("environment_version")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("environment_version")
