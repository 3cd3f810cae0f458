"""item identity is the guid alone

Revision ID: 0008_item_identity
Revises: 0007

Before this revision an entry was taken as seen when a stored item of its source had its guid,
its link (fragment dropped) or its text. Now the guid alone decides; sources that hold items are
flagged so that their next poll stores, without alerting them, the old entries the former rules
had skipped (storage.items.seen_before_upgrade).
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0008_item_identity'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('sources', schema=None) as batch_op:
        batch_op.add_column(sa.Column('legacy_identity', sa.Boolean(), server_default='0',
                                      nullable=False))
    op.execute(sa.text('UPDATE sources SET legacy_identity = true WHERE id IN '
                       '(SELECT DISTINCT source_id FROM items WHERE source_id IS NOT NULL)'))


def downgrade() -> None:
    with op.batch_alter_table('sources', schema=None) as batch_op:
        batch_op.drop_column('legacy_identity')
