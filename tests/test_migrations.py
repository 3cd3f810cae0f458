"""Migrations upgrade a database that holds data, and downgrade back, on both backends."""

from __future__ import annotations

from datetime import timedelta

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, text
from sqlmodel import SQLModel, col, select

from news.ingest import ingest
from news.items import ItemDraft
from news.newsroom import Newsroom
from storage import chats, deliveries, items, subscriptions
from storage.db import MIGRATIONS, make_engine, session_scope
from storage.errors import StoredError, last_error
from storage.models import Delivery, Item, Source, utcnow
from storage.sources import DueSource


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


def test_item_identity_migration_alerts_nothing_old_and_every_new_post(
    database_url: str,
) -> None:
    """A database of the link-keyed days: a podcast whose episodes all link to the home page
    (one of four stored), a blog whose guid-less posts were stored without their fragment.
    After the upgrade their old entries are stored without an alert, once; a new episode and a
    new post are alerted."""
    engine = make_engine(database_url)
    step(engine, "upgrade", "0007")
    last_poll = utcnow() - timedelta(hours=2)
    with engine.begin() as connection:
        for source_id, url in ((1, "http://show.test/rss"), (2, "http://blog.test/rss")):
            connection.execute(text(
                "INSERT INTO sources (id, url, name, interval_seconds, next_poll_at, paused, "
                "created_at) VALUES (:id, :url, :name, 60, :at, false, :at)"),
                {"id": source_id, "url": url, "name": url, "at": last_poll})
        connection.execute(text("INSERT INTO stories (id, title, created_at, signature) "
                                "VALUES (101, 'old', :at, ''), (102, 'old', :at, '')"),
                           {"at": last_poll})
        for source_id, story_id, guid, link, title in (
            (1, 101, "ep1", "http://show.test/", "Dwarves roll dice under a blood moon"),
            (2, 102, "http://blog.test/24.html", "http://blog.test/24.html",
             "Podcasting is the open web and nobody owns it"),
        ):
            connection.execute(text(
                "INSERT INTO items (source_id, source_name, story_id, guid, link, title, "
                "summary, content_hash, published_at, fetched_at) VALUES (:source, 'x', "
                ":story, :guid, :link, :title, :title, '', :at, :at)"),
                {"source": source_id, "story": story_id, "guid": guid, "link": link,
                 "title": title, "at": last_poll})
    step(engine, "upgrade", "head")
    room = Newsroom(engine)
    with session_scope(engine) as session:
        chats.ensure_chat(session=session, chat_id=7, chat_type="private", title=None,
                          language="en")
        subscriptions.add(session=session, chat_id=7, query="tavern")
    old = utcnow() - timedelta(days=3)
    show = DueSource(1, "http://show.test/rss", "Show", None, None)
    blog = DueSource(2, "http://blog.test/rss", "Blog", None, None)
    episodes = [ItemDraft(f"ep{n}", "http://show.test/", title, title, old + timedelta(hours=n))
                for n, title in ((1, "Dwarves roll dice under a blood moon in the tavern"),
                                 (2, "Robots in the tavern: metal heroes steal every scene"),
                                 (3, "Pirate radio from rusty ships, heard in the tavern"),
                                 (4, "Comets over the tavern for backyard astronomers"))]
    posts = [ItemDraft(f"http://blog.test/24.html#a{n}", f"http://blog.test/24.html#a{n}",
                       title, f"{title} tavern", None)
             for n, title in ((1, "Podcasting is the open web and nobody owns it"),
                              (2, "Twitter is a river and blogs are the sea"))]
    assert ingest(room, show, episodes) == 0
    assert ingest(room, blog, posts) == 0
    new_episode = ItemDraft("ep5", "http://show.test/", "Haunted lighthouses: a tavern tale",
                            "Haunted lighthouses: a tavern tale", utcnow())
    new_post = ItemDraft("http://blog.test/24.html#a3", "http://blog.test/24.html#a3",
                         "Outliners every day", "I still love outliners, even in a tavern.",
                         None)
    assert ingest(room, show, [new_episode, *episodes]) == 1
    assert ingest(room, blog, [new_post, *posts]) == 1
    with session_scope(engine) as session:
        assert len(session.exec(select(Item)).all()) == 2 + 4 + 2 + 1
        alerted = {item.guid for delivery in session.exec(select(Delivery)).all()
                   for item in items.of_story(session=session, story_id=delivery.story_id)}
        assert alerted == {"ep5", "http://blog.test/24.html#a3"}
    engine.dispose()


BEFORE_ERROR_COLUMNS = "0020_error_columns-1"  # whichever revision it follows


def test_error_columns_migration_splits_stored_errors_and_keeps_every_row(
    database_url: str,
) -> None:
    """Errors stored as "code|detail" come out as a code and a detail, split at the first
    '|' so that a detail holding '|' survives whole; an error from before codes is all code.
    The tables keep every row, and so do the rows that hang off them."""
    engine = make_engine(database_url)
    step(engine, "upgrade", BEFORE_ERROR_COLUMNS)
    at = utcnow() - timedelta(hours=1)
    old = {1: "http_status|500", 2: "network|proxy said: a | b|c", 3: "HTTP 500", 4: None,
           5: "timeout|"}
    with engine.begin() as connection:
        for source_id, stored in old.items():
            connection.execute(text(
                "INSERT INTO sources (id, url, name, interval_seconds, next_poll_at, paused, "
                "created_at, last_error) VALUES (:id, :url, 'x', 60, :at, false, :at, :error)"),
                {"id": source_id, "url": f"http://s{source_id}.test/rss", "at": at,
                 "error": stored})
        connection.execute(text("INSERT INTO searches (source_id, query, searched_at) "
                                "VALUES (1, 'SoftBank', :at)"), {"at": at})
        connection.execute(text("INSERT INTO chats (id, type, language, active, created_at) "
                                "VALUES (7, 'private', 'en', true, :at)"), {"at": at})
        connection.execute(text("INSERT INTO stories (id, title, created_at, signature) "
                                "VALUES (101, 'old', :at, '')"), {"at": at})
        connection.execute(text(
            "INSERT INTO items (source_id, source_name, story_id, guid, link, title, summary, "
            "content_hash, published_at, fetched_at) VALUES (1, 'x', 101, 'g', 'http://l.test/',"
            " 't', 't', '', :at, :at)"), {"at": at})
        for delivery_id, stored in ((11, "rejected|Bad Request: can't parse | entities"),
                                    (12, "attempts|AttributeError(5)")):
            connection.execute(text(
                "INSERT INTO deliveries (id, chat_id, story_id, thread_id, topics, state, "
                "attempts, next_attempt_at, created_at, last_error) VALUES (:id, 7, 101, "
                ":id, '[]', 'failed', 5, :at, :at, :error)"),
                {"id": delivery_id, "at": at, "error": stored})
        connection.execute(text("INSERT INTO votes (delivery_id, user_id, value, created_at) "
                                "VALUES (11, 7, 'down', :at)"), {"at": at})
    step(engine, "upgrade", "head")
    with session_scope(engine) as session:
        rows = session.exec(select(Source).order_by(col(Source.id))).all()
        assert [last_error(row) for row in rows] == [
            StoredError("http_status", "500"), StoredError("network", "proxy said: a | b|c"),
            StoredError("HTTP 500"), None, StoredError("timeout")]
        assert deliveries.failed_since(session=session, since=at - timedelta(days=1)) == [
            (StoredError("attempts", "AttributeError(5)"), 1),
            (StoredError("rejected", "Bad Request: can't parse | entities"), 1)]
    with engine.connect() as connection:
        counts = [connection.execute(text(f"SELECT count(*) FROM {table}")).scalar()
                  for table in ("searches", "votes", "deliveries")]
        assert counts == [1, 1, 2], "no table was rebuilt: nothing cascaded"
        assert connection.execute(text("SELECT source_id FROM items")).scalar() == 1
        tables = {"sources", "deliveries"}
        context = MigrationContext.configure(connection, opts={
            "include_object": lambda thing, name, kind, *_: kind != "table" or name in tables})
        assert compare_metadata(context, SQLModel.metadata) == [], \
            "the models and the migrations describe the same sources and deliveries"
    step(engine, "downgrade", BEFORE_ERROR_COLUMNS)
    with engine.connect() as connection:
        back = connection.execute(text("SELECT last_error FROM sources ORDER BY id")).scalars()
        assert list(back) == ["http_status|500", "network|proxy said: a | b|c", "HTTP 500|",
                              None, "timeout|"]
        assert connection.execute(text("SELECT count(*) FROM searches")).scalar() == 1
    step(engine, "upgrade", "head")
    engine.dispose()


BEFORE_REMOVAL_PRUNING = "0022_removal_pruning-1"  # whichever revision it follows


def test_removal_pruning_migration_dates_the_tombstones_already_there(
    database_url: str,
) -> None:
    """Tombstones written before the column count from the upgrade: kept for a day from
    then, like new ones, and the table matches the model."""
    engine = make_engine(database_url)
    step(engine, "upgrade", BEFORE_REMOVAL_PRUNING)
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO subscription_removals (subscription_id, revision) "
                                "VALUES (5, 3)"))
    step(engine, "upgrade", "head")
    with session_scope(engine) as session:
        assert subscriptions.prune_removals(session=session) == 0, "kept a day from now"
        assert subscriptions.prune_removals(session=session, keep=-timedelta(hours=1)) == 1
        assert subscriptions.head(session=session).pruned == 3
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={
            "include_object": lambda thing, name, kind, *_: kind != "table"
            or name == "subscription_removals"})
        assert compare_metadata(context, SQLModel.metadata) == []
    step(engine, "downgrade", BEFORE_REMOVAL_PRUNING)
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO subscription_removals (subscription_id, revision) "
                                "VALUES (6, 4)"))
    step(engine, "upgrade", "head")
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM subscription_removals "
                                       "WHERE removed_at IS NOT NULL")).scalar() == 1
    engine.dispose()
