"""search providers: a kind per source, and when each provider last searched each query

Revision ID: 0014_search_providers
Revises: 0013_feedback
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0014_search_providers'
down_revision: str | None = '0013_feedback'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('sources', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16),
                                      server_default='feed', nullable=False))
    op.create_table('searches',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('source_id', sa.Integer(), nullable=False),
    sa.Column('query', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('searched_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['source_id'], ['sources.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('source_id', 'query')
    )
    with op.batch_alter_table('searches', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_searches_searched_at'), ['searched_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_searches_source_id'), ['source_id'], unique=False)


def downgrade() -> None:
    op.drop_table('searches')
    with op.batch_alter_table('sources', schema=None) as batch_op:
        batch_op.drop_column('kind')
