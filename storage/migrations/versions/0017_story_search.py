"""full-text search over stored items (title and summary), for /ask

SQLite: an FTS5 table with the items as its external content, kept in sync by triggers, so
every writer (the pipeline, an edit, a cascade from a removed story) keeps it current without
knowing it exists. PostgreSQL: the items' text as a 'simple' tsvector (no language's
stemming: stories come in every language), with CJK characters spaced apart so a word written
without spaces is found as a phrase of its characters, in a stored generated column under a GIN
index. Stored, not an expression index: ranking reads each match's vector, and recomputing it
per row made a question of common words take seconds on 20,000 items (bench/ask.py).

Neither is in storage/models.py: the ORM never reads or writes them. A later migration that
rebuilds `items` in SQLite batch mode drops these triggers with the old table and must create
them again.

Revision ID: 0017_story_search
Revises: 0016_weekly_briefs
"""
from collections.abc import Sequence

from alembic import op
from sqlalchemy.exc import OperationalError

revision: str = '0017_story_search'
down_revision: str | None = '0016_weekly_briefs'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DOCUMENT = (
    "to_tsvector('simple'::regconfig, regexp_replace(coalesce(title, '') || ' ' || "
    "coalesce(summary, ''), '([\\u3040-\\u30ff\\u3400-\\u9fff\\uac00-\\ud7af])', ' \\1 ', 'g'))"
)

SQLITE_TRIGGERS = (
    """CREATE TRIGGER item_search_insert AFTER INSERT ON items BEGIN
        INSERT INTO item_search (rowid, title, summary) VALUES (new.id, new.title, new.summary);
    END""",
    """CREATE TRIGGER item_search_delete AFTER DELETE ON items BEGIN
        INSERT INTO item_search (item_search, rowid, title, summary)
        VALUES ('delete', old.id, old.title, old.summary);
    END""",
    """CREATE TRIGGER item_search_update AFTER UPDATE OF title, summary ON items BEGIN
        INSERT INTO item_search (item_search, rowid, title, summary)
        VALUES ('delete', old.id, old.title, old.summary);
        INSERT INTO item_search (rowid, title, summary) VALUES (new.id, new.title, new.summary);
    END""",
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE items ADD COLUMN search_vector tsvector "
                   f"GENERATED ALWAYS AS ({DOCUMENT}) STORED")  # fills the stored items too
        op.execute("CREATE INDEX ix_items_search ON items USING gin (search_vector)")
        return
    try:
        op.execute("CREATE VIRTUAL TABLE item_search USING fts5(title, summary, "
                   "content='items', content_rowid='id', tokenize='unicode61 remove_diacritics 2')")
    except OperationalError as error:  # every common build has FTS5; say so plainly if not
        if "fts5" not in str(error):
            raise
        raise RuntimeError("this SQLite library was built without FTS5, which /ask's search "
                           "needs: use a Python whose sqlite3 has it, or PostgreSQL") from error
    for trigger in SQLITE_TRIGGERS:
        op.execute(trigger)
    # the items stored before this migration
    op.execute("INSERT INTO item_search (item_search) VALUES ('rebuild')")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_items_search")
        op.execute("ALTER TABLE items DROP COLUMN search_vector")
        return
    for name in ("insert", "delete", "update"):
        op.execute(f"DROP TRIGGER item_search_{name}")
    op.execute("DROP TABLE item_search")
