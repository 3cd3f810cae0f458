"""Admin commands for sources and admins (SPEC §3), through the real bot."""

from __future__ import annotations

import time

from tests.fakes.feeds import rss as rss_feed
from tests.harness import ADMIN_ID, World, say, wait_for_summary


def test_pause_resume_interval_and_poll_now(world: World) -> None:
    telegram, feeds = world.telegram, world.feeds
    admin = telegram.user(ADMIN_ID, "Ada")
    chat = telegram.private_chat(admin)
    assert "Paused source #1" in say(telegram, chat, admin, "/pausesource 1")
    assert "⏸ paused" in say(telegram, chat, admin, "/sources")
    time.sleep(1.5)  # a poll claimed just before the pause may still finish
    hits = feeds.hits("/feed.xml")
    time.sleep(2.5)
    assert feeds.hits("/feed.xml") == hits, "a paused source is not polled"
    assert "Resumed source #1" in say(telegram, chat, admin, "/resumesource 1")
    deadline = time.monotonic() + 10
    while feeds.hits("/feed.xml") == hits:
        assert time.monotonic() < deadline, "resumed source not polled"
        time.sleep(0.1)

    assert "from 60 to 604800" in say(telegram, chat, admin, "/interval 1 5")
    assert "every 600 s" in say(telegram, chat, admin, "/interval 1 600")
    assert "every 600 s" in say(telegram, chat, admin, "/sources")
    time.sleep(3)  # one poll claimed under the old 1 s interval may still come
    hits = feeds.hits("/feed.xml")
    time.sleep(2)
    assert feeds.hits("/feed.xml") == hits, "not polled again within its 600 s interval"
    assert "Polling source #1" in say(telegram, chat, admin, "/pollnow 1")
    deadline = time.monotonic() + 10
    while feeds.hits("/feed.xml") == hits:
        assert time.monotonic() < deadline, "/pollnow did not poll"
        time.sleep(0.1)
    assert "Polling every active source now (1)" in say(telegram, chat, admin, "/pollnow")

    for command, expected in {
        "/pausesource": "source's number", "/pausesource x": "source's number",
        "/resumesource 99": "no source #99", "/interval": "from 60 to",
        "/interval 1": "from 60 to", "/interval 99 600": "no source #99",
        "/pollnow abc": "source's number", "/pollnow 42": "no source #42",
    }.items():
        assert expected in say(telegram, chat, admin, command), command


def test_admins_can_be_added_and_removed_but_admin_ids_stay(world: World) -> None:
    telegram = world.telegram
    admin = telegram.user(ADMIN_ID, "Ada")
    chat = telegram.private_chat(admin)
    helper = telegram.user(4242, "Hal", language_code="en")
    helper_chat = telegram.private_chat(helper)
    assert "only the bot's admins" in say(telegram, helper_chat, helper, "/sources")
    assert "only the bot's admins" in say(telegram, helper_chat, helper, "/addadmin 4242")
    assert "is now an admin" in say(telegram, chat, admin, "/addadmin 4242")
    assert "already an admin" in say(telegram, chat, admin, "/addadmin 4242")
    assert "#1 Test News" in say(telegram, helper_chat, helper, "/sources")
    listing = say(telegram, chat, admin, "/admins")
    assert f"{ADMIN_ID} (ADMIN_IDS, permanent)" in listing
    assert f"4242, added by {ADMIN_ID}" in listing
    assert "stays an admin" in say(telegram, helper_chat, helper, f"/removeadmin {ADMIN_ID}")
    assert "no longer an admin" in say(telegram, chat, admin, "/removeadmin 4242")
    assert "only the bot's admins" in say(telegram, helper_chat, helper, "/sources")
    for bad in ("/addadmin", "/addadmin bob", "/addadmin -5", "/removeadmin 1.5"):
        assert "Telegram user id" in say(telegram, chat, admin, bad), bad
    assert "not an admin added by command" in say(telegram, chat, admin, "/removeadmin 777")


def test_opml_export_then_import_elsewhere(world: World) -> None:
    telegram, feeds = world.telegram, world.feeds
    admin = telegram.user(ADMIN_ID, "Ada")
    chat = telegram.private_chat(admin)
    say(telegram, chat, admin, "/exportopml")
    exported = telegram.messages(chat["id"])[-1]
    assert exported.file_name == "tidings-sources.opml" and exported.document
    assert feeds.url("/feed.xml").encode() in exported.document

    feeds.put("/second.xml", rss_feed("Second Wire", []))
    opml = (b'<?xml version="1.0"?><opml version="2.0"><head/><body><outline text="News">'
            b'<outline type="rss" text="Second" xmlUrl="' + feeds.url("/second.xml").encode()
            + b'"/><outline type="rss" text="Again" xmlUrl="' + feeds.url("/feed.xml").encode()
            + b'"/><outline type="rss" text="Broken" xmlUrl="' + feeds.url("/missing").encode()
            + b'"/></outline></body></opml>')
    document = telegram.send_document(chat, admin, opml, "mine.opml")
    assert "reply to it with /importopml" in say(telegram, chat, admin, "/importopml")
    before = len(telegram.messages(chat["id"]))
    telegram.send_text(chat, admin, "/importopml", reply_to_message_id=document["message_id"])
    progress = telegram.wait_for_messages(chat["id"], before + 1, timeout=20)[before]
    assert "of 3 checked" in progress.text, "one progress message first"
    summary = wait_for_summary(telegram, chat["id"], progress.message_id)
    assert "1 added, 1 already there, 1 failed" in summary
    assert len(telegram.messages(chat["id"])) == before + 1, "the summary replaces the progress"
    assert "HTTP error 404" in summary
    assert "#2 Second" in say(telegram, chat, admin, "/sources")

    bogus = telegram.send_document(chat, admin, b"<html>not opml</html>", "page.html")
    before = len(telegram.messages(chat["id"]))
    telegram.send_text(chat, admin, "/importopml", reply_to_message_id=bogus["message_id"])
    assert "not an OPML" in telegram.wait_for_messages(chat["id"], before + 1)[before].text
