"""Autogenerate the next Alembic revision from storage/models.py.

Usage: python tools/new_migration.py "what changed" 0003
It migrates a scratch SQLite database to the current head and diffs it against the models.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alembic import command
from alembic.config import Config

from storage.db import MIGRATIONS, make_engine, migrate


def main(message: str, revision_id: str) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        engine = make_engine(f"sqlite:///{scratch}/scratch.db")
        migrate(engine)
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.revision(config, message=message, autogenerate=True, rev_id=revision_id)
        engine.dispose()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
