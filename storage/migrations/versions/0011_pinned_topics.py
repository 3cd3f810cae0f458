"""topics pinned as 重点追踪 (track closely)

Revision ID: 0011_pinned_topics
Revises: 0010_weekly_trend
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0011_pinned_topics'
down_revision: str | None = '0010_weekly_trend'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pinned', sa.Boolean(), server_default='0', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.drop_column('pinned')
