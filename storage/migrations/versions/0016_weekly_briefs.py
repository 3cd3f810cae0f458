"""weekly brief: the per-chat setting, and one storyline per topic, ISO week and language

Revision ID: 0016_weekly_briefs
Revises: 0015_websub
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0016_weekly_briefs'
down_revision: str | None = '0015_websub'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('chats', schema=None) as batch_op:
        batch_op.add_column(sa.Column('weekly_brief', sa.Boolean(), server_default='0',
                                      nullable=False))
        batch_op.add_column(sa.Column('weekly_day', sa.Integer(), server_default='1',
                                      nullable=False))
        batch_op.add_column(sa.Column('weekly_time', sqlmodel.sql.sqltypes.AutoString(length=5),
                                      server_default='09:00', nullable=False))
        batch_op.add_column(sa.Column('weekly_brief_at', sqlmodel.sql.sqltypes.UTCDateTime(),
                                      nullable=True))
    op.create_table('weekly_briefs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('query', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('week', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('language', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('origin', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('claimed_until', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('payload', sa.Text(), nullable=True),
    sa.Column('stories', sa.Text(), server_default='[]', nullable=False),
    sa.Column('tokens_in', sa.Integer(), nullable=False),
    sa.Column('tokens_out', sa.Integer(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('query', 'week', 'language')
    )


def downgrade() -> None:
    op.drop_table('weekly_briefs')
    with op.batch_alter_table('chats', schema=None) as batch_op:
        batch_op.drop_column('weekly_brief_at')
        batch_op.drop_column('weekly_time')
        batch_op.drop_column('weekly_day')
        batch_op.drop_column('weekly_brief')
