"""subscription revisions: a revision per subscription and tombstones for removed ones, so a
cached matcher reads only what changed since the revision it has seen

Revision ID: 0021_subscription_revisions
Revises: 0020_error_columns
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0021_subscription_revisions'
down_revision: str | None = '0020_error_columns'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing rows keep revision 0: every process loads them all when it starts.
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('revision', sa.BigInteger(), server_default='0',
                                      nullable=False))
        batch_op.create_index(batch_op.f('ix_subscriptions_revision'), ['revision'],
                              unique=False)
    op.create_table('subscription_removals',
    sa.Column('subscription_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('revision', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('subscription_id')
    )
    with op.batch_alter_table('subscription_removals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_subscription_removals_revision'), ['revision'],
                              unique=False)


def downgrade() -> None:
    op.drop_table('subscription_removals')
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_subscriptions_revision'))
        batch_op.drop_column('revision')
