"""Migrations upgrade a database that holds data, and downgrade back, on both backends."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, inspect, text

from storage.db import MIGRATIONS, make_engine


def step(engine: Engine, action: str, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        getattr(command, action)(config, revision)


def test_forum_topics_migration_keeps_subscriptions_and_widens_uniqueness(
    database_url: str,
) -> None:
    engine = make_engine(database_url)
    step(engine, "upgrade", "0002")
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO chats (id, type, language, active, created_at) "
                                "VALUES (1, 'private', 'en', true, '2026-01-01')"))
        connection.execute(text("INSERT INTO subscriptions (chat_id, query, created_at) "
                                "VALUES (1, 'SoftBank', '2026-01-01')"))
    step(engine, "upgrade", "head")
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO subscriptions (chat_id, query, thread_id, created_at)"
                                " VALUES (1, 'SoftBank', 5, '2026-01-01')"))
        rows = connection.execute(text("SELECT query, thread_id FROM subscriptions")).all()
        assert sorted(rows) == [("SoftBank", 0), ("SoftBank", 5)]
        assert connection.execute(text("SELECT mode FROM chats")).scalar() == "instant"
    uniques = [u["column_names"] for u in inspect(engine).get_unique_constraints("subscriptions")]
    assert uniques == [["chat_id", "thread_id", "query"]]
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM subscriptions WHERE thread_id = 5"))
    step(engine, "downgrade", "0002")
    step(engine, "upgrade", "head")
    engine.dispose()
