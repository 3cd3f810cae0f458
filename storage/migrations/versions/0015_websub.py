"""websub: a feed's subscription at its hub

Revision ID: 0015_websub
Revises: 0014_search_providers
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0015_websub'
down_revision: str | None = '0014_search_providers'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('websub',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('source_id', sa.Integer(), nullable=False),
    sa.Column('hub_url', sa.Text(), nullable=False),
    sa.Column('topic_url', sa.Text(), nullable=False),
    sa.Column('callback', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('secret', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('requested_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('lease_expires_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('next_attempt_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('failures', sa.Integer(), server_default='0', nullable=False),
    sa.Column('error_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('error_detail', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('last_push_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('poll_interval_seconds', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['source_id'], ['sources.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('callback'),
    sa.UniqueConstraint('source_id')
    )
    with op.batch_alter_table('websub', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_websub_next_attempt_at'), ['next_attempt_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('websub', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_websub_next_attempt_at'))

    op.drop_table('websub')
