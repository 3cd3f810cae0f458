"""removal pruning: when each subscription tombstone was written, so tombstones older than a
day can be deleted (storage.subscriptions.prune_removals) instead of kept for ever

Revision ID: 0022_removal_pruning
Revises: 0025_delivery_claim_order (merged first, though numbered after)
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0022_removal_pruning'
down_revision: str | None = '0025_delivery_claim_order'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Tombstones already there count from now: they are pruned a day after the upgrade. No
    # index: the table holds a day of removals, and only the pruning reads this column.
    with op.batch_alter_table('subscription_removals', schema=None) as batch_op:
        batch_op.add_column(sa.Column('removed_at', sqlmodel.sql.sqltypes.UTCDateTime(),
                                      server_default=sa.func.current_timestamp(),
                                      nullable=False))


def downgrade() -> None:
    # The watermark (revisions row "subscriptions_pruned") stays: what was pruned stays gone.
    with op.batch_alter_table('subscription_removals', schema=None) as batch_op:
        batch_op.drop_column('removed_at')
