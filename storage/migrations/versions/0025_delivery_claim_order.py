"""delivery claim order: an index on (state, id) in place of the one on state, so a claim
reads the waiting rows in id order a page at a time instead of ranking every one of them

Revision ID: 0025_delivery_claim_order
Revises: 0021_subscription_revisions
"""
from collections.abc import Sequence

from alembic import op


revision: str = '0025_delivery_claim_order'
down_revision: str | None = '0021_subscription_revisions'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index('ix_deliveries_state_id', 'deliveries', ['state', 'id'], unique=False)
    op.drop_index('ix_deliveries_state', table_name='deliveries')


def downgrade() -> None:
    op.create_index('ix_deliveries_state', 'deliveries', ['state'], unique=False)
    op.drop_index('ix_deliveries_state_id', table_name='deliveries')
