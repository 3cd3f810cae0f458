"""ask accents: PostgreSQL's /ask search folds accents, as SQLite's does

SQLite's index (0017) is FTS5 with `remove_diacritics 2`: `societe` finds `Société`, `Zurich`
finds `Zürich`. PostgreSQL's 'simple' tsvector kept the accents, so there it found neither. The
unaccent extension would do, but CREATE EXTENSION needs rights a hosted database often withholds
and the package is not always installed, and unaccent() is not immutable, so no generated column
may call it. Instead an immutable SQL function, tidings_fold: each Latin letter whose canonical
decomposition is an ASCII letter and combining marks becomes that letter (488 letters: those
SQLite folds but for ſ and ẛ, which it also folds, and Ǡ and ǡ, which it does not), and a
combining diacritic on an ASCII letter (text stored decomposed) is dropped, as SQLite drops it;
other scripts keep theirs (й is not и), as in SQLite. Both the stored column and each question's
query (storage.story_search) go through it.

It decomposes, drops the marks on ASCII letters and composes again (normalize(), PostgreSQL 13
and a UTF8 database); elsewhere it translate()s the 488 letters, which folds them alike (but drops
every combining diacritic of text stored decomposed, not only those on Latin letters) and costs
about 0.65 ms per stored item of 500 characters against 0.1 (20,000 items: 13.5 s against 2.3 s,
0.8 s unfolded), as translate() reads its whole list for every character.

The column is generated: dropping it and adding it again computes it anew for every stored item
(the table is rewritten, and the index built again). SQLite: nothing to do.

Revision ID: 0024_ask_accents
Revises: 0023_hub_unsubscribe
"""
import unicodedata
from collections.abc import Sequence

from alembic import op
from sqlalchemy import Connection, text

revision: str = '0024_ask_accents'
down_revision: str | None = '0023_hub_unsubscribe'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SPACED = ("regexp_replace(coalesce(title, '') || ' ' || coalesce(summary, ''), "
          "'([\\u3040-\\u30ff\\u3400-\\u9fff\\uac00-\\ud7af])', ' \\1 ', 'g')")  # as 0017
FOLDED = f"to_tsvector('simple'::regconfig, tidings_fold({SPACED}))"
UNFOLDED = f"to_tsvector('simple'::regconfig, {SPACED})"
COMBINING = range(0x0300, 0x0370)  # Combining Diacritical Marks
# decomposed, a Latin letter's marks follow its ASCII base: they go, and the rest is composed again
NORMALIZED = ("normalize(regexp_replace(normalize($1, NFD), '([A-Za-z])[\\u0300-\\u036f]+', "
              "'\\1', 'g'), NFC)")


def folds() -> tuple[str, str]:
    """translate()'s two strings: each accented Latin letter and its base letter (case kept:
    the tsvector lowercases), then the combining diacritics, which have none and are dropped."""
    accented, base = [], []
    for code in range(0x00C0, 0x2000):
        letter = chr(code)
        if not unicodedata.name(letter, "").startswith("LATIN"):
            continue
        first, *marks = unicodedata.normalize("NFD", letter)
        if marks and first.isascii() and first.isalpha() and all(map(unicodedata.combining,
                                                                       marks)):
            accented.append(letter)
            base.append(first)
    return "".join(accented) + "".join(map(chr, COMBINING)), "".join(base)


def translated() -> str:
    accented, base = folds()
    return f"translate($1, '{accented}', '{base}')"


def fold_body(connection: Connection) -> str:
    """normalize() where the server has it (13 and later) and may use it (a UTF8 database)."""
    usable = connection.execute(text(
        "SELECT current_setting('server_version_num')::int >= 130000 "
        "AND current_setting('server_encoding') = 'UTF8'")).scalar()
    return NORMALIZED if usable else translated()


def _column(expression: str) -> None:
    op.execute("DROP INDEX ix_items_search")
    op.execute("ALTER TABLE items DROP COLUMN search_vector")
    op.execute(f"ALTER TABLE items ADD COLUMN search_vector tsvector "
               f"GENERATED ALWAYS AS ({expression}) STORED")
    op.execute("CREATE INDEX ix_items_search ON items USING gin (search_vector)")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"CREATE FUNCTION tidings_fold(text) RETURNS text LANGUAGE sql IMMUTABLE STRICT "
               f"PARALLEL SAFE AS $fold$ SELECT {fold_body(op.get_bind())} $fold$")
    _column(FOLDED)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _column(UNFOLDED)
    op.execute("DROP FUNCTION tidings_fold(text)")
