"""Issue 22 end to end: a fresh bot whose only source is a search provider (the GDELT
emulator), one reader, /subscribe SoftBank; what the provider already had is never alerted,
an article published afterwards is, with its link, and an article about something else that
the provider returns as well reaches nobody."""

from __future__ import annotations

import time
from pathlib import Path

from tests.conftest import BotProcess
from tests.fakes.search import GDELT_PATH, Failure, SearchServer
from tests.fakes.telegram import BotApiEmulator
from tests.fakes.telegram_html import parse_html_entities
from tests.harness import TOKEN, say

READER_ID, ADMIN_ID = 3003, 1001


def links(html: str) -> list[str]:
    return [entity["url"] for entity in parse_html_entities(html)[1]
            if entity["type"] == "text_link"]


def test_a_topic_finds_its_own_news(
    database_url: str, tmp_path: Path, bot_process: type[BotProcess]
) -> None:
    with BotApiEmulator(token=TOKEN) as telegram, SearchServer(everything=True) as search:
        search.publish("SoftBank opened an office in Lille last week", "/old",
                       publisher="Old News", domain="old.test")
        env = {"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": telegram.base_url,
               "DATABASE_URL": database_url,
               "SEARCH_PROVIDERS": "gdelt", "GDELT_API_URL": search.gdelt_url,
               "ALLOWED_SOURCE_NETWORKS": "127.0.0.0/8",  # the emulator is on loopback
               "SEARCH_INTERVAL_SECONDS": "1"}
        bot = bot_process(tmp_path, env).start()
        bot.wait_for_log("Tidings starting")
        reader = telegram.user(READER_ID, "Rita", language_code="en")
        chat = telegram.private_chat(reader)

        subscribed = time.monotonic()
        assert "SoftBank" in say(telegram, chat, reader, "/subscribe SoftBank")
        first = search.wait_for_requests(GDELT_PATH, 1)[0]
        assert first.params["query"] == "SoftBank"
        bot.wait_for_log("first search: recorded, not alerted")
        before = len(telegram.messages(chat["id"]))

        article = search.publish("SoftBank pledges billions for an AI valley in France",
                                 "/softbank-ai-valley", publisher="Le Monde",
                                 domain="lemonde.fr")
        search.publish("Cheese prices rise in Normandy", "/cheese")
        alert = telegram.wait_for_messages(chat["id"], before + 1, timeout=30)[before]
        first_alert = time.monotonic() - subscribed
        assert "SoftBank pledges billions for an AI valley" in alert.text
        assert article.url in links(alert.html)
        assert "lemonde.fr" in alert.text, "the publisher is shown as the source"
        print(f"first alert {first_alert:.1f} s after /subscribe")

        # Two more searches, each answered with every article: nothing else arrives.
        seen = len(search.requests(GDELT_PATH))
        search.wait_for_requests(GDELT_PATH, seen + 2)
        bot.wait_for_log("0 unseen")
        messages = telegram.messages(chat["id"])
        assert len(messages) == before + 1, [m.text for m in messages[before:]]
        assert not any("Cheese" in m.text or "Lille" in m.text for m in messages)
        assert not any(r.refused for r in search.requests(GDELT_PATH)), "5 s apart"
        assert bot.terminate() == 0
        assert telegram.rejected == []
        assert "Traceback" not in bot.log


def test_admins_see_and_control_the_provider(
    database_url: str, tmp_path: Path, bot_process: type[BotProcess]
) -> None:
    with BotApiEmulator(token=TOKEN) as telegram, SearchServer() as search:
        search.fail(GDELT_PATH, Failure(503, "<html><body><h1>503</h1></body></html>",
                                        "text/html"))
        env = {"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": telegram.base_url,
               "DATABASE_URL": database_url, "ADMIN_IDS": str(ADMIN_ID),
               "SEARCH_PROVIDERS": "gdelt", "GDELT_API_URL": search.gdelt_url,
               "ALLOWED_SOURCE_NETWORKS": "127.0.0.0/8", "SEARCH_INTERVAL_SECONDS": "1",
               "COMMANDS_PER_MINUTE": "0"}
        bot = bot_process(tmp_path, env).start()
        bot.wait_for_log("Tidings starting")
        admin = telegram.user(ADMIN_ID, "Ada", language_code="en")
        chat = telegram.private_chat(admin)
        say(telegram, chat, admin, "/subscribe SoftBank")
        say(telegram, chat, admin, "/subscribe Nvidia")
        search.wait_for_requests(GDELT_PATH, 1)
        bot.wait_for_log("search provider gdelt failed")

        listing = say(telegram, chat, admin, "/sources")
        assert "#1 GDELT · ⚠️ failing since" in listing
        assert "HTTP error 503" in listing
        assert "search provider · topics asked about: 2" in listing
        assert search.gdelt_url in listing

        assert "GDELT" in say(telegram, chat, admin, "/pausesource 1")
        assert "⏸ paused" in say(telegram, chat, admin, "/sources")
        assert "GDELT" in say(telegram, chat, admin, "/resumesource 1")
        search.wait_for_requests(GDELT_PATH, 2)
        bot.wait_for_log("first search: recorded, not alerted")
        assert "#1 GDELT · ✅ ok" in say(telegram, chat, admin, "/sources")
        assert not any(r.refused for r in search.requests(GDELT_PATH))
        assert bot.terminate() == 0

        # Search turned off: the provider leaves /sources at the next start.
        bot = bot_process(tmp_path, env | {"SEARCH_PROVIDERS": ""}).start()
        deadline = time.monotonic() + 20
        while "GDELT" in (listing := say(telegram, chat, admin, "/sources")):
            assert time.monotonic() < deadline, listing
        assert "No sources yet" in listing
        assert bot.terminate() == 0
        assert telegram.rejected == []


def test_a_test_bot_searches_nothing_unless_told(
    database_url: str, tmp_path: Path, bot_process: type[BotProcess]
) -> None:
    """tests/conftest.py starts every bot with SEARCH_PROVIDERS empty unless the test names
    a provider: a bot given only a provider's URL asks nobody, not GDELT itself."""
    with BotApiEmulator(token=TOKEN) as telegram, SearchServer() as search:
        env = {"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": telegram.base_url,
               "DATABASE_URL": database_url, "GDELT_API_URL": search.gdelt_url,
               "ALLOWED_SOURCE_NETWORKS": "127.0.0.0/8", "SEARCH_INTERVAL_SECONDS": "1"}
        bot = bot_process(tmp_path, env).start()
        reader = telegram.user(READER_ID, "Rita", language_code="en")
        assert "SoftBank" in say(telegram, telegram.private_chat(reader), reader,
                                 "/subscribe SoftBank")
        bot.wait_for_log("search providers: none")  # the search job's first and last word
        assert search.requests(GDELT_PATH) == []
        assert bot.terminate() == 0


def test_a_provider_left_at_a_public_address_fails_loudly_in_a_test_bot(
    tmp_path: Path, bot_process: type[BotProcess]
) -> None:
    """Every bot a test starts runs with ALLOW_PUBLIC_NETWORKS=false: a provider whose URL was
    not pointed at an emulator is refused before any connection, and says why in /sources."""
    with BotApiEmulator(token=TOKEN) as telegram:
        env = {"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": telegram.base_url,
               "DATABASE_URL": f"sqlite:///{tmp_path / 'tidings.db'}",
               "ADMIN_IDS": str(ADMIN_ID), "SEARCH_PROVIDERS": "gdelt",
               "GDELT_API_URL": "http://8.8.8.8/api/v2/doc/doc",  # public: never reached
               "ALLOWED_SOURCE_NETWORKS": "127.0.0.0/8", "SEARCH_INTERVAL_SECONDS": "1",
               "COMMANDS_PER_MINUTE": "0"}
        bot = bot_process(tmp_path, env).start()
        admin = telegram.user(ADMIN_ID, "Ada", language_code="en")
        chat = telegram.private_chat(admin)
        say(telegram, chat, admin, "/subscribe SoftBank")
        bot.wait_for_log("search provider gdelt failed")
        listing = say(telegram, chat, admin, "/sources")
        assert "#1 GDELT · ⚠️ failing since" in listing
        assert "outside the networks this bot may reach" in listing
        assert bot.terminate() == 0
        assert telegram.rejected == []
