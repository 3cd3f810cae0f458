"""paid broadcast: alerts sent with allow_paid_broadcast per day, and Telegram's refusals

Revision ID: 0019_paid_broadcast
Revises: 0018_story_embeddings
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0019_paid_broadcast'
down_revision: str | None = '0018_story_embeddings'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('paid_broadcast',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('messages', sa.Integer(), nullable=False),
    sa.Column('refused', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('day')
    )


def downgrade() -> None:
    op.drop_table('paid_broadcast')
