"""What readers see: every reader command and button, in every catalogue language, as Telegram
shows the text after parsing its entities (SentMessage.text), never HTML or catalogue internals."""

from __future__ import annotations

import re
from collections.abc import Callable

from babel import Locale

from handlers import ADMIN_COMMANDS, READER_COMMANDS
from handlers.topics import wording
from locales import catalog
from news.topics import describe, parse
from tests.fakes.telegram import SentMessage
from tests.fakes.telegram_html import parse_html
from tests.harness import ADMIN_ID, NEW_SOFTBANK, World, say, wait_until

LANGUAGES = catalog.languages
KEYS = sorted({*catalog._messages["en"], *catalog._plurals["en"]}, key=len, reverse=True)
KEY = re.compile(r"(?<![\w.])(" + "|".join(map(re.escape, KEYS)) + r")(?![\w.])")
MARKUP = re.compile(r"&(?:lt|gt|amp|quot|#\d+|#x[0-9a-f]+);|</?(?:b|i|u|s|code|pre|a)\b")
PLACEHOLDER = re.compile(r"\{[a-z_]*\}")
# A pronoun with nothing before it to stand for ("elle aurait trouvé…") was the bug here.
PREVIEW_SUBJECT = {"fr": "ce sujet aurait trouvé 1 article", "de": "hätte dieses Thema 1 Meldung"}


def problems(text: str) -> list[str]:
    """Escaped HTML, tags, catalogue keys or unfilled `{placeholders}` in a visible text."""
    return [found.group(0) for pattern in (MARKUP, KEY, PLACEHOLDER)
            for found in pattern.finditer(text)]


def native(code: str) -> str:
    name = Locale.parse(code).get_display_name(code) or code
    return name[:1].upper() + name[1:]


def commands_in(text: str) -> set[str]:
    return {name for name in (*READER_COMMANDS, *ADMIN_COMMANDS)
            if re.search(rf"/{name}\b", text)}


def test_every_reader_command_and_button_reads_cleanly_in_every_language(world: World) -> None:
    telegram = world.telegram
    readers = {}
    for number, language in enumerate(LANGUAGES):
        user = telegram.user(9100 + number, f"Reader{number}", language_code=language)
        readers[language] = (telegram.private_chat(user), user)
    answers: list[tuple[str, str]] = []  # (language, the note shown over the chat)
    commands: list[str] = []

    def everyone(command: str | Callable[[str], str]) -> dict[str, str]:
        """Send to every chat at once, then read each chat's next reply."""
        before = {lang: len(telegram.messages(chat["id"])) for lang, (chat, _) in readers.items()}
        commands.append(str(command))
        for lang, (chat, user) in readers.items():
            telegram.send_text(chat, user, command(lang) if callable(command) else command)
        return {lang: telegram.wait_for_messages(chat["id"], before[lang] + 1, timeout=30)
                [before[lang]].text for lang, (chat, _) in readers.items()}

    def last(language: str) -> SentMessage:
        return telegram.messages(readers[language][0]["id"])[-1]

    def press(language: str, message: SentMessage, data: str, *, edits: bool = True) -> str:
        """Press a button; wait for the note and, when the press changes it, the edited message."""
        chat, user = readers[language]
        query_id = telegram.press_button(chat, user, message.message_id, data)
        wait_until(lambda: bool(telegram.answered_callbacks(query_id)), timeout=30)
        if edits:
            wait_until(lambda: _edits(telegram.messages(chat["id"]), message) > message.edits,
                       timeout=30)
        note = str(telegram.answered_callbacks(query_id)[0].get("text", ""))
        answers.append((language, note))
        return note

    for lang, text in everyone("/start").items():
        assert "/help" in text, lang
    for lang, text in everyone("/help").items():
        assert commands_in(text) == set(READER_COMMANDS), (lang, "readers see reader commands")

    for lang, text in everyone("/subscribe SoftBank -Hawks").items():
        assert describe(parse("SoftBank -Hawks"), wording(catalog, lang)) in text, lang
        preview = parse_html(catalog.ngettext(lang, "subscribe.preview", 1, lines=""))
        assert preview.strip() in text, (lang, "one story of the week, in the singular form")
        assert PREVIEW_SUBJECT.get(lang, "") in text, (lang, "the preview says what would have")
    everyone("/subscribe SoftBank -Hawks")  # already followed
    everyone("/subscribe")
    everyone('/subscribe "data center')
    everyone("/subscribe (SoftBank OR 软银) France")
    everyone("/subscribe Zyxwv")
    for lang, text in everyone("/topics").items():
        assert "Zyxwv" in text and "SoftBank" in text, lang

    world.publish(NEW_SOFTBANK)  # an alert in every chat, then a digest that counts it
    for chat, _ in readers.values():
        wait_until(lambda chat=chat: any("SoftBank pledges billions" in m.text
                                         for m in telegram.messages(chat["id"])), timeout=60)
    for lang, text in everyone("/digest 24").items():
        header = parse_html(catalog.ngettext(lang, "digest.header", 1))
        assert text.startswith(header), (lang, text)
    everyone("/digest")
    everyone("/digest 0")
    for lang, text in everyone("/ask SoftBank Lille").items():
        assert "[1] SoftBank opens an office in Lille" in text, (lang, "no LLM: the stories")
    everyone("/ask")

    everyone("/unsubscribe")
    for lang in LANGUAGES:
        menu = last(lang)
        buttons = [b for row in menu.reply_markup["inline_keyboard"] for b in row]
        [zyxwv] = [b for b in buttons if "Zyxwv" in b["text"]]
        assert "Zyxwv" in press(lang, menu, zyxwv["callback_data"]), lang
    everyone("/unsubscribe Nothing")
    everyone("/unsubscribe 9")
    everyone("/unsubscribe (SoftBank OR 软银) France")

    everyone("/lang")
    for lang in LANGUAGES:
        assert native(lang) in press(lang, last(lang), f"lang:{lang}"), lang
    for lang, text in everyone(lambda lang: f"/lang {lang}").items():
        assert native(lang) in text, (lang, "the language is named in its own words")
    everyone("/lang zz")

    for lang, text in everyone("/settings").items():
        assert "08:00" in text and "UTC" in text, lang
    for lang in LANGUAGES:
        screen = last(lang)
        press(lang, screen, "mode:digest")
        press(lang, screen, "mode:instant")
        press(lang, screen, "bogus:1", edits=False)  # stale: a note, no change
    for command in ("/settings tz Europe/Paris", "/settings digest 25:00",
                    "/settings tz Mars/Olympus", "/settings quiet 22:00-07:00",
                    "/settings quiet off", "/settings digest 07:30", "/settings"):
        everyone(command)
    everyone("/frobnicate")

    admin = telegram.user(ADMIN_ID, "Ada")
    admin_chat = telegram.private_chat(admin)
    for lang in LANGUAGES:
        say(telegram, admin_chat, admin, f"/lang {lang}")
        shown = say(telegram, admin_chat, admin, "/help")
        assert commands_in(shown) == {*READER_COMMANDS, *ADMIN_COMMANDS}, lang

    for lang, (chat, _) in [*readers.items(), ("admin", (admin_chat, admin))]:
        sent = telegram.messages(chat["id"])
        assert len(sent) >= (len(commands) + 1 if lang != "admin" else 16), "1 reply each, 1 alert"
        for message in sent:
            assert not problems(message.text), (lang, problems(message.text), message.text)
    assert len(answers) == 5 * len(LANGUAGES)
    for lang, note in answers:
        assert note and not problems(note), (lang, note)


def _edits(messages: list[SentMessage], message: SentMessage) -> int:
    return next(m.edits for m in messages if m.message_id == message.message_id)
