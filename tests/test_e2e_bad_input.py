"""Bad input gets a short, clear answer in the chat, and changes nothing (SPEC §3)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.conftest import BotProcess
from tests.fakes.feeds import FeedServer, html_page
from tests.fakes.telegram import BotApiEmulator
from tests.harness import ADMIN_ID, TOKEN, env_for, say


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def running(tmp_path: Path, bot_process: type[BotProcess]):  # type: ignore[no-untyped-def]
    with BotApiEmulator(token=TOKEN) as telegram, FeedServer() as feeds:
        bot = bot_process(tmp_path, env_for(telegram, f"sqlite:///{tmp_path / 't.db'}")).start()
        bot.wait_for_log("Tidings starting")
        yield telegram, feeds
        assert telegram.rejected == [], "every reply passes the Bot API checks"
        assert "Traceback" not in bot.log


def test_reader_mistakes(running: tuple[BotApiEmulator, FeedServer]) -> None:
    telegram, _ = running
    user = telegram.user(5001, "Bo", language_code="en")
    chat = telegram.private_chat(user)
    cases = {
        "/subscribe": "Tell me what to follow",
        "/subscribe    ": "Tell me what to follow",
        '/subscribe "data center': "quotation mark is not closed",
        "/subscribe -crypto": "not only exclusions",
        "/subscribe SoftBank OR": "OR needs a word on each side",
        "/subscribe (SoftBank": "parenthesis is not matched",
        "/subscribe !!! ???": "not only symbols",
        "/subscribe SoftBank 🚀": "leave out a lone symbol such as & or 🚀",
        "/subscribe <b>bold</b> & <script>": "leave out a lone symbol",
        "/subscribe " + "x" * 400: "too long",
        "/unsubscribe": "follows no topics",
        "/unsubscribe Nothing": "does not follow",
        "/unsubscribe 7": "does not follow",
        "/lang": "This chat's language is",
        "/lang klingon-ish please": "not a language code",
        "/lang zz": "not a language code",
        "/frobnicate": "/help",
    }
    for command, expected in cases.items():
        assert expected in say(telegram, chat, user, command), command
    assert "follows no topics" in say(telegram, chat, user, "/topics"), "nothing was added"
    reply = say(telegram, chat, user, "/subscribe <b>AT&T</b> \u202eevil\u202c \u200bzero")
    assert "Following" in reply, "HTML is plain text in a query; bidi and zero-width are dropped"
    assert "«<b>AT&T</b>» AND «evil» AND «zero»" in reply
    assert "This chat's language is English (en)." in say(telegram, chat, user, "/lang")


def test_admin_commands_refused_for_non_admins(running: tuple[BotApiEmulator, FeedServer]) -> None:
    telegram, feeds = running
    feeds.put("/feed.xml", "<rss version='2.0'><channel><title>T</title></channel></rss>")
    user = telegram.user(5002, "Eve", language_code="en")
    chat = telegram.private_chat(user)
    for command in (f"/addsource {feeds.url('/feed.xml')}", "/sources", "/removesource 1"):
        assert "only the bot's admins" in say(telegram, chat, user, command)
    assert feeds.hits("/feed.xml") == 0, "a refused /addsource fetches nothing"
    admin = telegram.user(ADMIN_ID, "Ada", language_code="en")
    assert "No sources yet" in say(telegram, telegram.private_chat(admin), admin, "/sources")


def test_bad_sources(running: tuple[BotApiEmulator, FeedServer]) -> None:
    telegram, feeds = running
    feeds.put("/page.html", html_page("No feed here"), content_type="text/html")
    feeds.put("/broken", "oops", status=500)
    admin = telegram.user(ADMIN_ID, "Ada", language_code="en")
    chat = telegram.private_chat(admin)
    cases = {
        "/addsource": "starting with http",
        "/addsource not-a-url": "starting with http",
        "/addsource ftp://example.com/feed": "starting with http",
        f"/addsource http://127.0.0.1:{closed_port()}/feed.xml": "could not connect",
        f"/addsource {feeds.url('/page.html')}": "not an RSS, Atom or JSON feed",
        f"/addsource {feeds.url('/missing.xml')}": "HTTP error 404",
        f"/addsource {feeds.url('/broken')}": "HTTP error 500",
        "/addsource http://169.254.169.254/latest/meta-data": "private or reserved",
        "/addsource http://10.1.2.3/feed": "private or reserved",
        "/removesource": "source's number",
        "/removesource abc": "source's number",
        "/removesource 42": "no source #42",
    }
    for command, expected in cases.items():
        assert expected in say(telegram, chat, user=admin, text=command), command
    assert "No sources yet" in say(telegram, chat, admin, "/sources"), "nothing was added"


def press_and_settle(telegram: BotApiEmulator, chat: dict, user: dict, message_id: int,
                     data: str) -> str:
    """Press a button, then return the note it got once every reply to the press is in (a
    /start sent after it is answered after it: each chat's updates are handled in order)."""
    query_id = telegram.press_button(chat, user, message_id, data)
    say(telegram, chat, user, "/start")
    return str(telegram.answered_callbacks(query_id)[0].get("text", ""))


def test_numbers_are_ascii_digits_in_range(running: tuple[BotApiEmulator, FeedServer]) -> None:
    """`str.isdigit` accepts "²", which int() refuses; 23 digits overflow a database id; 5,000
    digits exceed int()'s limit: each gets its command's usage, never an internal error."""
    telegram, _ = running
    admin = telegram.user(ADMIN_ID, "Ada", language_code="en")
    chat = telegram.private_chat(admin)
    assert "Following" in say(telegram, chat, admin, "/subscribe SoftBank")
    huge = "12345678901234567890123"
    cases = {
        "/unsubscribe ²": "does not follow",
        "/unsubscribe " + huge: "does not follow",
        "/trend ²": "No story matched ²",
        "/trend 1 ²": "DAYS must be a whole number",
        "/trend " + "9" * 5000: "no topic number",
        "/removesource ²": "source's number",
        "/removesource " + huge: "source's number",
        "/pausesource ²": "source's number",
        "/resumesource " + huge: "source's number",
        "/pollnow " + huge: "source's number",
        "/interval ² 60": "interval in seconds",
        "/interval 1 ⁶⁰": "interval in seconds",
        "/interval " + huge + " 60": "interval in seconds",
        "/addadmin ²": "Telegram user id",
        "/removeadmin " + huge: "Telegram user id",
        "/digest ²": "number of hours",
        "/digest " + "9" * 5000: "number of hours",
    }
    for command, expected in cases.items():
        shown = say(telegram, chat, admin, command)
        assert expected in shown and len(shown) < 500, (command[:40], shown[:200])
    assert "SoftBank" in say(telegram, chat, admin, "/topics"), "nothing was removed"


def test_long_arguments_are_echoed_as_a_short_excerpt(
    running: tuple[BotApiEmulator, FeedServer],
) -> None:
    telegram, _ = running
    user = telegram.user(5003, "Lu", language_code="en")
    chat = telegram.private_chat(user)
    long_word = "x" * 5000
    cases = {
        f"/unsubscribe {long_word}": "does not follow",
        f"/lang {long_word}": "not a language code",
        f"/settings tz {long_word}": "not a time zone",
        f"/settings tz Europe/{long_word}": "not a time zone",
        "/settings tz ../../../../etc/passwd": "not a time zone",
    }
    for command, expected in cases.items():
        shown = say(telegram, chat, user, command)
        assert expected in shown and len(shown) < 500, (command[:40], shown[:200])
    assert "UTC" in say(telegram, chat, user, "/settings"), "the time zone is unchanged"
    admin = telegram.user(ADMIN_ID, "Ada", language_code="en")
    admin_chat = telegram.private_chat(admin)
    for command in ("/why", "/trend", "/settings digest", "/settings quiet", "/settings",
                    "/subscribe", "/addsource", "/addsource http://127.0.0.1/", "/pausesource",
                    "/interval 1", "/addadmin", "/removeadmin", "/pollnow", "/digest"):
        shown = say(telegram, admin_chat, admin, f"{command} {long_word}")
        assert "went wrong" not in shown and len(shown) < 700, (command, shown[:200])


def test_pressing_the_chosen_button_again_is_no_error(
    running: tuple[BotApiEmulator, FeedServer],
) -> None:
    """Telegram refuses an edit that changes nothing ("message is not modified"): a second
    press of the chosen mode or language is done already, not an internal error."""
    telegram, _ = running
    user = telegram.user(5004, "Mo", language_code="en")
    chat = telegram.private_chat(user)
    say(telegram, chat, user, "/settings")
    screen = telegram.messages(chat["id"])[-1]
    for _ in range(2):
        assert "saved" in press_and_settle(telegram, chat, user, screen.message_id,
                                           "mode:digest")
    say(telegram, chat, user, "/lang")
    menu = telegram.messages(chat["id"])[-1]
    for _ in range(2):
        assert "Français" in press_and_settle(telegram, chat, user, menu.message_id, "lang:fr")
    shown = [message.text for message in telegram.messages(chat["id"])]
    assert not [text for text in shown if "went wrong" in text or "Désolé" in text], shown


def test_a_member_is_told_what_they_may_not_change(
    running: tuple[BotApiEmulator, FeedServer],
) -> None:
    """In a group, only its admins configure it; a member hears what they tried to change."""
    telegram, _ = running
    group = telegram.group(-4100, "Desk", supergroup=True)
    member = telegram.user(5005, "Mo", language_code="en")
    telegram.set_member_status(group["id"], member["id"], "member")
    cases = {
        "/lang fr": "only this group's admins can change its language",
        "/settings tz UTC": "only this group's admins can change its settings",
        "/subscribe SoftBank": "only this group's admins can change what it follows",
    }
    for command, expected in cases.items():
        assert expected in say(telegram, group, member, command), command
    assert "This chat's language" in say(telegram, group, member, "/lang"), "anyone may look"
    menu = telegram.messages(group["id"])[-1]
    assert "can change its language" in press_and_settle(telegram, group, member,
                                                         menu.message_id, "lang:fr")
    assert "Daily digest" in say(telegram, group, member, "/settings")
    screen = telegram.messages(group["id"])[-1]
    assert "can change its settings" in press_and_settle(telegram, group, member,
                                                         screen.message_id, "mode:digest")
    assert "UTC" in say(telegram, group, member, "/settings"), "nothing changed"


def test_small_things_a_reader_sees(running: tuple[BotApiEmulator, FeedServer]) -> None:
    telegram, _ = running
    user = telegram.user(5006, "Lea", language_code="fr")
    chat = telegram.private_chat(user)
    shown = say(telegram, chat, user, "SoftBank")
    assert "Pour le suivre, envoyez /subscribe SoftBank." in shown, "a bare word: a suggestion"
    assert "/subscribe " + "y" * 50 in say(telegram, chat, user, "y" * 5000), "cut short"
    assert "La langue de ce chat est Français (fr)." in say(telegram, chat, user, "/lang")
    assert "Europe/Paris" in say(telegram, chat, user, "/settings tz europe/paris")
    assert "UTC" in say(telegram, chat, user, "/settings tz utc"), "zone names in any case"
    say(telegram, chat, user, "/subscribe (SoftBank OR 软银) France")
    assert "1. (SoftBank OR 软银) France" in say(telegram, chat, user, "/topics")
    reader = telegram.user(5007, "Li", language_code="zh-hans")
    assert "本聊天的语言是 中文（zh）" in say(telegram, telegram.private_chat(reader), reader,
                                              "/lang")


def test_a_source_with_tracking_parameters_is_the_same_source(
    running: tuple[BotApiEmulator, FeedServer],
) -> None:
    telegram, feeds = running
    feeds.put("/feed.xml", "<rss version='2.0'><channel><title>Wire</title></channel></rss>")
    admin = telegram.user(ADMIN_ID, "Ada", language_code="en")
    chat = telegram.private_chat(admin)
    assert "Added source #1" in say(telegram, chat, admin, f"/addsource {feeds.url('/feed.xml')}")
    for tracked in ("?utm_source=x", "?utm_source=x&utm_medium=rss", "?fbclid=abc"):
        shown = say(telegram, chat, admin, f"/addsource {feeds.url('/feed.xml')}{tracked}")
        assert "already added as #1 (Wire)" in shown, (tracked, shown)
    assert "#2" not in say(telegram, chat, admin, "/sources"), "one source, listed once"
