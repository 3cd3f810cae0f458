"""story signatures, item hashes, message edits

Revision ID: 0005
Revises: 0004
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('needs_edit', sa.Boolean(), server_default='0', nullable=False))

    with op.batch_alter_table('items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('content_hash', sqlmodel.sql.sqltypes.AutoString(length=40), server_default='', nullable=False))
        batch_op.create_index(batch_op.f('ix_items_content_hash'), ['content_hash'], unique=False)
        batch_op.create_index(batch_op.f('ix_items_fetched_at'), ['fetched_at'], unique=False)

    with op.batch_alter_table('stories', schema=None) as batch_op:
        batch_op.add_column(sa.Column('signature', sa.Text(), server_default='', nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('stories', schema=None) as batch_op:
        batch_op.drop_column('signature')

    with op.batch_alter_table('items', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_items_fetched_at'))
        batch_op.drop_index(batch_op.f('ix_items_content_hash'))
        batch_op.drop_column('content_hash')

    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_column('needs_edit')

