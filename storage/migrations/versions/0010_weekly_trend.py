"""weekly trend chart setting

Revision ID: 0010_weekly_trend
Revises: 0009_claim_tokens
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0010_weekly_trend'
down_revision: str | None = '0009_claim_tokens'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('chats', schema=None) as batch_op:
        batch_op.add_column(sa.Column('weekly_trend', sa.Boolean(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('weekly_trend_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('chats', schema=None) as batch_op:
        batch_op.drop_column('weekly_trend_at')
        batch_op.drop_column('weekly_trend')
