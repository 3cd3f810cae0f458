"""feedback: votes, choices offered under 👎, mutes

Revision ID: 0013_feedback
Revises: 0012_replica_claims
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0013_feedback'
down_revision: str | None = '0012_replica_claims'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('feedback_choices',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('delivery_id', sa.Integer(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('text', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('source_id', sa.Integer(), nullable=True),
    sa.Column('applied', sa.Boolean(), nullable=False),
    sa.Column('changed', sa.Text(), server_default='[]', nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['delivery_id'], ['deliveries.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['source_id'], ['sources.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('feedback_choices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_feedback_choices_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_feedback_choices_delivery_id'), ['delivery_id'], unique=False)

    op.create_table('mutes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('subscription_id', sa.Integer(), nullable=False),
    sa.Column('source_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['source_id'], ['sources.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['subscription_id'], ['subscriptions.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('subscription_id', 'source_id')
    )
    with op.batch_alter_table('mutes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mutes_source_id'), ['source_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_mutes_subscription_id'), ['subscription_id'], unique=False)

    op.create_table('votes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('delivery_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=False),
    sa.Column('value', sqlmodel.sql.sqltypes.AutoString(length=4), nullable=False),
    sa.Column('subscription_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['delivery_id'], ['deliveries.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['subscription_id'], ['subscriptions.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('delivery_id', 'user_id')
    )
    with op.batch_alter_table('votes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_votes_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_votes_delivery_id'), ['delivery_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_votes_subscription_id'), ['subscription_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('votes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_votes_subscription_id'))
        batch_op.drop_index(batch_op.f('ix_votes_delivery_id'))
        batch_op.drop_index(batch_op.f('ix_votes_created_at'))

    op.drop_table('votes')
    with op.batch_alter_table('mutes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mutes_subscription_id'))
        batch_op.drop_index(batch_op.f('ix_mutes_source_id'))

    op.drop_table('mutes')
    with op.batch_alter_table('feedback_choices', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_feedback_choices_delivery_id'))
        batch_op.drop_index(batch_op.f('ix_feedback_choices_created_at'))

    op.drop_table('feedback_choices')
