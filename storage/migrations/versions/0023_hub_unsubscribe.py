"""hub unsubscribe: dropped WebSub subscriptions kept until their hub has cancelled them

Revision ID: 0023_hub_unsubscribe
Revises: 0022_removal_pruning
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0023_hub_unsubscribe'
down_revision: str | None = '0022_removal_pruning'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('websub_retired',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('hub_url', sa.Text(), nullable=False),
    sa.Column('topic_url', sa.Text(), nullable=False),
    sa.Column('callback', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('next_attempt_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('keep_until', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('error_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('callback')
    )
    with op.batch_alter_table('websub_retired', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_websub_retired_keep_until'), ['keep_until'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_websub_retired_next_attempt_at'),
                              ['next_attempt_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('websub_retired', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_websub_retired_next_attempt_at'))
        batch_op.drop_index(batch_op.f('ix_websub_retired_keep_until'))
    op.drop_table('websub_retired')
