"""error columns: a source's or a delivery's last error as a code and a detail, not "code|detail"

Revision ID: 0020_error_columns
Revises: 0019_paid_broadcast
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0020_error_columns'
down_revision: str | None = '0019_paid_broadcast'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ('sources', 'deliveries')
# Never rebuild these tables on SQLite: with foreign keys on, dropping the old copy deletes
# its rows first, and that cascades to searches, feedback and why rows and unlinks items.
# SQLite has dropped a plain column in place since 3.35.
IN_PLACE = 'never'


def _split(table: str) -> str:
    """Everything before the first '|' is the code, everything after it the detail (which
    may hold '|' itself); an error stored before codes existed is all code."""
    bar = ("instr(last_error, '|')" if op.get_bind().dialect.name == 'sqlite'
           else "strpos(last_error, '|')")
    return (f"UPDATE {table} SET "
            f"error_code = CASE WHEN {bar} > 0 THEN substr(last_error, 1, {bar} - 1) "
            f"ELSE last_error END, "
            f"error_detail = CASE WHEN {bar} > 0 THEN substr(last_error, {bar} + 1) "
            f"ELSE '' END "
            f"WHERE last_error IS NOT NULL")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None, recreate=IN_PLACE) as batch_op:
            batch_op.add_column(sa.Column('error_code', sqlmodel.sql.sqltypes.AutoString(),
                                          nullable=True))
            batch_op.add_column(sa.Column('error_detail', sqlmodel.sql.sqltypes.AutoString(),
                                          nullable=True))
        op.execute(_split(table))
        with op.batch_alter_table(table, schema=None, recreate=IN_PLACE) as batch_op:
            batch_op.drop_column('last_error')


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None, recreate=IN_PLACE) as batch_op:
            batch_op.add_column(sa.Column('last_error', sqlmodel.sql.sqltypes.AutoString(),
                                          nullable=True))
        op.execute(f"UPDATE {table} SET last_error = substr(error_code || '|' || "
                   f"coalesce(error_detail, ''), 1, 500) WHERE error_code IS NOT NULL")
        with op.batch_alter_table(table, schema=None, recreate=IN_PLACE) as batch_op:
            batch_op.drop_column('error_detail')
            batch_op.drop_column('error_code')
