"""chat settings, forum topics, suggestions

Revision ID: 0003
Revises: 0002
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite reflects the unique constraints of 0001 without names; this names them for batch mode.
SQLITE_NAMES = {"uq": "uq_%(table_name)s_%(column_0_N_name)s"}
WIDENED = (
    ("subscriptions", ["chat_id", "query"], ["chat_id", "thread_id", "query"]),
    ("deliveries", ["chat_id", "story_id"], ["chat_id", "thread_id", "story_id"]),
)


def _old_name(table: str, columns: list[str]) -> str:
    joined = "_".join(columns)
    return f"{table}_{joined}_key" if op.get_bind().dialect.name == "postgresql" else f"uq_{table}_{joined}"


def upgrade() -> None:
    op.create_table('suggestions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('subscription_id', sa.Integer(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('text', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.ForeignKeyConstraint(['subscription_id'], ['subscriptions.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('suggestions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_suggestions_subscription_id'), ['subscription_id'], unique=False)

    with op.batch_alter_table('chats', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mode', sqlmodel.sql.sqltypes.AutoString(length=16), server_default='instant', nullable=False))
        batch_op.add_column(sa.Column('digest_time', sqlmodel.sql.sqltypes.AutoString(length=5), server_default='08:00', nullable=False))
        batch_op.add_column(sa.Column('timezone', sqlmodel.sql.sqltypes.AutoString(length=64), server_default='UTC', nullable=False))
        batch_op.add_column(sa.Column('quiet_start', sqlmodel.sql.sqltypes.AutoString(length=5), nullable=True))
        batch_op.add_column(sa.Column('quiet_end', sqlmodel.sql.sqltypes.AutoString(length=5), nullable=True))

    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), server_default=sa.func.current_timestamp(), nullable=False))
        batch_op.create_index(batch_op.f('ix_subscriptions_updated_at'), ['updated_at'], unique=False)

    for table, old, new in WIDENED:
        with op.batch_alter_table(table, naming_convention=SQLITE_NAMES) as batch_op:
            batch_op.add_column(sa.Column('thread_id', sa.Integer(), server_default='0', nullable=False))
            batch_op.drop_constraint(_old_name(table, old), type_='unique')
            batch_op.create_unique_constraint(f"uq_{table}_{'_'.join(new)}", new)


def downgrade() -> None:
    for table, old, new in WIDENED:
        with op.batch_alter_table(table, naming_convention=SQLITE_NAMES) as batch_op:
            batch_op.drop_constraint(f"uq_{table}_{'_'.join(new)}", type_='unique')
            batch_op.drop_column('thread_id')
            batch_op.create_unique_constraint(_old_name(table, old), old)

    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_subscriptions_updated_at'))
        batch_op.drop_column('updated_at')

    with op.batch_alter_table('chats', schema=None) as batch_op:
        batch_op.drop_column('quiet_end')
        batch_op.drop_column('quiet_start')
        batch_op.drop_column('timezone')
        batch_op.drop_column('digest_time')
        batch_op.drop_column('mode')

    with op.batch_alter_table('suggestions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_suggestions_subscription_id'))

    op.drop_table('suggestions')
