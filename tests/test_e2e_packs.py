"""Issue 22 items 2 and 3 end to end: a fresh bot says it has no sources (and who can add
them) instead of blaming the query, offers its admin the starter packs, and adds a pack's
feeds, each checked, the failing one reported and skipped. The packs here are written by the
test and point at the loopback feed server: no test reaches a real feed."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from news.opml import Outline, export_opml
from tests.conftest import BotProcess
from tests.fakes.feeds import FeedServer, rss
from tests.fakes.search import SearchServer
from tests.fakes.telegram import BotApiEmulator, SentMessage
from tests.harness import ADMIN_ID, READER_ID, TOKEN, env_for, say, wait_for_summary, wait_until

NO_SOURCES = "This bot has no news sources yet"
BLAME = "Check the spelling"
STORY = [{"title": "Harbour reopens after the storm", "link": "http://news.test/h1",
          "guid": "h1", "description": "Boats are back.",
          "pub_date": datetime(2026, 11, 1, tzinfo=UTC)}]


def buttons(message: SentMessage) -> dict[str, str]:
    """callback data -> label of the message's inline keyboard."""
    assert message.reply_markup is not None, message.text
    return {button["callback_data"]: button["text"]
            for row in message.reply_markup["inline_keyboard"] for button in row}


def press(telegram: BotApiEmulator, chat: dict, user: dict, message: SentMessage,
          data: str) -> str:
    """The short answer Telegram shows after the press."""
    query_id = telegram.press_button(chat, user, message.message_id, data)
    wait_until(lambda: bool(telegram.answered_callbacks(query_id)))
    return str(telegram.answered_callbacks(query_id)[0].get("text", ""))


def write_packs(directory: Path, feeds: FeedServer) -> None:
    directory.mkdir()
    (directory / "en-news.opml").write_bytes(export_opml([
        Outline(feeds.url("/harbour.xml"), "Harbour Times"),
        Outline(feeds.url("/gone.xml"), "Gone Gazette"),  # answers 404: reported, skipped
        Outline(feeds.url("/valley.xml"), "Valley Post"),
    ]))
    (directory / "fr-news.opml").write_bytes(export_opml([
        Outline(feeds.url("/port.xml"), "Le Port"),
    ]))


def test_a_fresh_bot_says_it_has_no_sources_and_adds_a_starter_pack(
    database_url: str, tmp_path: Path, bot_process: type[BotProcess]
) -> None:
    with BotApiEmulator(token=TOKEN) as telegram, FeedServer() as feeds:
        for path, title in (("/harbour.xml", "Harbour Times"), ("/valley.xml", "Valley Post"),
                            ("/port.xml", "Le Port")):
            feeds.put(path, rss(title, STORY))
        write_packs(tmp_path / "packs", feeds)
        env = env_for(telegram, database_url) | {
            "SEARCH_PROVIDERS": "", "STARTER_PACKS_DIR": str(tmp_path / "packs")}
        bot = bot_process(tmp_path, env).start()
        bot.wait_for_log("Tidings starting")
        admin = telegram.user(ADMIN_ID, "Ada", language_code="en")
        reader = telegram.user(READER_ID, "Rita", language_code="en")
        admin_chat, reader_chat = telegram.private_chat(admin), telegram.private_chat(reader)

        # A reader is told the bot has no sources and that its admins add them.
        answer = say(telegram, reader_chat, reader, "/subscribe SoftBank")
        assert "Following SoftBank" in answer and NO_SOURCES in answer
        assert "The bot's admins must add sources first" in answer
        assert BLAME not in answer and "/addsource" not in answer
        # An admin is told how: /addsource and the starter packs.
        answer = say(telegram, admin_chat, admin, "/subscribe SoftBank")
        assert NO_SOURCES in answer and "/addsource pack" in answer and BLAME not in answer

        # /start: the admin gets the packs one tap away; a reader does not.
        say(telegram, reader_chat, reader, "/start")
        assert telegram.messages(reader_chat["id"])[-1].reply_markup is None
        say(telegram, admin_chat, admin, "/start")
        welcome = telegram.messages(admin_chat["id"])[-1]
        assert "Welcome to Tidings" in welcome.text and "no sources yet" in welcome.text
        assert buttons(welcome) == {"packs:list": "📦 Starter packs"}
        before = len(telegram.messages(admin_chat["id"]))
        telegram.press_button(admin_chat, admin, welcome.message_id, "packs:list")
        listed = telegram.wait_for_messages(admin_chat["id"], before + 1)[before]
        assert "en-news: English, news, 3 feeds" in listed.text
        assert "fr-news: Français, news, 1 feed" in listed.text
        assert "العربية: news, business, technology, science" in listed.text, "gaps are said"
        assert "English: business, technology, science" in listed.text
        assert buttons(listed) == {"pack:en-news": "➕ en-news (3)",
                                   "pack:fr-news": "➕ fr-news (1)"}

        # The same list by command; unknown packs and non-admins are refused.
        assert "en-news: English, news, 3 feeds" in say(telegram, admin_chat, admin,
                                                       "/addsource pack")
        assert "no starter pack called nope" in say(telegram, admin_chat, admin,
                                                   "/addsource pack nope")
        assert "only the bot's admins" in say(telegram, reader_chat, reader,
                                              "/addsource pack en-news")

        # A pack's button is the bot admins' alone, and one for no pack is out of date.
        assert "only the bot's admins" in press(telegram, admin_chat, reader, listed,
                                                "pack:en-news")
        assert "only the bot's admins" in press(telegram, admin_chat, reader, welcome,
                                                "packs:list")
        assert "out of date" in press(telegram, admin_chat, admin, listed, "pack:xx-news")
        empty = say(telegram, admin_chat, admin, "/sources")
        assert "No sources yet" in empty and "/addsource pack" in empty, "nothing added"

        # Adding a pack: one progress message becomes the summary; the 404 is named.
        before = len(telegram.messages(admin_chat["id"]))
        telegram.send_text(admin_chat, admin, "/addsource pack EN-news")
        progress = telegram.wait_for_messages(admin_chat["id"], before + 1)[before]
        assert "Starter pack en-news" in progress.text and "of 3" in progress.text
        summary = wait_for_summary(telegram, admin_chat["id"], progress.message_id)
        assert "2 added, 0 already there, 1 failed" in summary
        assert feeds.url("/gone.xml") in summary and "HTTP error 404" in summary
        assert len(telegram.messages(admin_chat["id"])) == before + 1
        listing = say(telegram, admin_chat, admin, "/sources")
        assert "Harbour Times" in listing and "Valley Post" in listing
        assert "Gone Gazette" not in listing

        # A pack's button adds it too.
        before = len(telegram.messages(admin_chat["id"]))
        telegram.press_button(admin_chat, admin, listed.message_id, "pack:fr-news")
        progress = telegram.wait_for_messages(admin_chat["id"], before + 1)[before]
        summary = wait_for_summary(telegram, admin_chat["id"], progress.message_id)
        assert "Starter pack fr-news: 1 added" in summary
        assert "Le Port" in say(telegram, admin_chat, admin, "/sources")

        # With sources, an empty preview is about the query again; /start offers nothing.
        answer = say(telegram, reader_chat, reader, "/subscribe Zyxwv")
        assert "matched no story of the last 7 days" in answer and NO_SOURCES not in answer
        say(telegram, admin_chat, admin, "/start")
        assert telegram.messages(admin_chat["id"])[-1].reply_markup is None


def test_with_search_and_no_feeds_the_preview_blames_neither(
    database_url: str, tmp_path: Path, bot_process: type[BotProcess]
) -> None:
    """Search is a source: no "no sources", and no spelling advice before its first search;
    /start still offers an admin the packs, saying the bot has no feeds."""
    with BotApiEmulator(token=TOKEN) as telegram, SearchServer() as search:
        env = env_for(telegram, database_url) | {
            "SEARCH_PROVIDERS": "gdelt", "GDELT_API_URL": search.gdelt_url}
        bot = bot_process(tmp_path, env).start()
        bot.wait_for_log("Tidings starting")
        reader = telegram.user(READER_ID, "Rita", language_code="en")
        answer = say(telegram, telegram.private_chat(reader), reader, "/subscribe SoftBank")
        assert "first search runs within minutes" in answer
        assert NO_SOURCES not in answer and BLAME not in answer
        admin = telegram.user(ADMIN_ID, "Ada", language_code="en")
        admin_chat = telegram.private_chat(admin)
        say(telegram, admin_chat, admin, "/start")
        welcome = telegram.messages(admin_chat["id"])[-1]
        assert "no feeds yet" in welcome.text and "no sources" not in welcome.text
        assert buttons(welcome) == {"packs:list": "📦 Starter packs"}, "packs still offered"
