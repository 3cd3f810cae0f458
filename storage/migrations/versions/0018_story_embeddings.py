"""story embeddings and the embeddings of semantic topics' meanings

Revision ID: 0018_story_embeddings
Revises: 0017_story_search
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0018_story_embeddings'
down_revision: str | None = '0017_story_search'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('story_embeddings',
    sa.Column('story_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('model', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('dims', sa.Integer(), nullable=False),
    sa.Column('vector', sa.LargeBinary(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['story_id'], ['stories.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('story_id')
    )
    with op.batch_alter_table('story_embeddings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_story_embeddings_created_at'), ['created_at'],
                              unique=False)
    op.create_table('meaning_embeddings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('dims', sa.Integer(), nullable=False),
    sa.Column('meaning', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('vector', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('model', 'dims', 'meaning')
    )


def downgrade() -> None:
    op.drop_table('meaning_embeddings')
    op.drop_table('story_embeddings')
