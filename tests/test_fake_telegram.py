"""The Telegram fake must refuse what Telegram refuses, or app tests prove nothing."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import html
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from telegram import (
    Bot,
    ChatMemberAdministrator,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    Message,
    MessageEntity,
    Update,
)
from telegram.error import BadRequest, ChatMigrated, Forbidden, NetworkError, RetryAfter
from telegram.ext import Application, CommandHandler, ContextTypes

from tests.fakes.telegram import BotApiEmulator, Limits, load_table
from tests.fakes.telegram_html import TelegramHtmlError, parse_html, parse_html_entities
from tests.harness import wait_until


@pytest.fixture
def emu() -> Iterator[BotApiEmulator]:
    with BotApiEmulator() as emulator:
        yield emulator


def call(
    emu: BotApiEmulator, method: str, token: str | None = None, **params: Any
) -> httpx.Response:
    """Form-encoded POST, the way PTB sends: non-strings JSON-encoded, strings raw."""
    data = {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}
    with httpx.Client() as client:
        return client.post(f"{emu.base_url}/bot{token or emu.token}/{method}", data=data)


# -- table ------------------------------------------------------------------------------------


def test_table_has_the_methods_and_required_fields_the_bot_relies_on() -> None:
    table = load_table()
    assert table["version"].startswith("Bot API ")
    fields = table["methods"]["sendMessage"]["fields"]
    assert fields["chat_id"] == {"types": ["Integer", "String"], "required": True}
    assert fields["text"]["required"] is True
    assert fields["parse_mode"]["required"] is False
    for method in ("getUpdates", "getMe", "setMyCommands", "answerCallbackQuery", "getChatMember"):
        assert method in table["methods"]
    assert "description" not in str(fields)  # compact: no prose committed


# -- HTML parse mode --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("html", "plain"),
    [
        ("<b>bold <i>and italic</i></b>", "bold and italic"),
        ('<a href="https://example.com/?a=1&amp;b=2">link</a>', "link"),
        ("1 &lt; 2 &amp;&amp; 3 &gt; 2 &quot;q&quot; &#65;&#x1F600;", '1 < 2 && 3 > 2 "q" A😀'),
        ('<pre><code class="language-python">x = 1</code></pre>', "x = 1"),
        ('<span class="tg-spoiler">s</span><tg-spoiler>t</tg-spoiler>', "st"),
        ("<blockquote expandable>quote</blockquote><u>u</u><s>s</s>", "quoteus"),
        ("2 > 1", "2 > 1"),
    ],
)
def test_valid_html_parses_to_plain_text(html: str, plain: str) -> None:
    assert parse_html(html) == plain


@pytest.mark.parametrize(
    ("html", "error"),
    [
        ("<b>unclosed", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b>x</b> <foo>y</foo>", 'Unsupported start tag "foo" at byte offset 9'),
        ("1 < 2", 'Unsupported start tag "" at byte offset 2'),
        ("a&nbsp;b", 'Unsupported HTML entity "&nbsp;" at byte offset 1'),
        ("AT&T", 'Character "&" must be escaped'),
        ("<b><i>x</b></i>", 'Unmatched end tag at byte offset 7, expected "</i>", found "</b>"'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("<span>x</span>", 'Tag "span" must have class "tg-spoiler"'),
        ("<a>x</a>", 'Tag "a" must have attribute "href"'),
        ("é <br>", 'Unsupported start tag "br" at byte offset 3'),  # offsets are UTF-8 bytes
    ],
)
def test_invalid_html_is_rejected_like_telegram(html: str, error: str) -> None:
    with pytest.raises(TelegramHtmlError, match=r"^Can't parse entities: ") as info:
        parse_html(html)
    assert error in str(info.value)


def test_entities_use_utf16_offsets() -> None:
    plain, entities = parse_html_entities("😀 <b>hi</b>")
    assert plain == "😀 hi"
    assert entities == [{"type": "bold", "offset": 3, "length": 2}]


# -- HTTP surface -----------------------------------------------------------------------------


def test_unknown_method_wrong_token_and_missing_field(emu: BotApiEmulator) -> None:
    assert call(emu, "sendMessages", chat_id=1, text="x").json() == {
        "ok": False, "error_code": 404, "description": "Not Found"
    }  # fmt: skip
    unauthorized = call(emu, "getMe", token="999:WRONG")
    assert (unauthorized.status_code, unauthorized.json()["description"]) == (401, "Unauthorized")
    missing = call(emu, "sendMessage", chat_id=1)
    assert missing.status_code == 400
    assert missing.json() == {
        "ok": False, "error_code": 400, "description": "Bad Request: text is required"
    }  # fmt: skip
    bad_type = call(emu, "deleteMessage", chat_id=1, message_id="seven")
    assert bad_type.status_code == 400
    expected = ["sendMessages", "getMe", "sendMessage", "deleteMessage"]
    assert [r["method"] for r in emu.rejected] == expected
    assert [c[0] for c in emu.calls] == [r["method"] for r in emu.rejected]


def test_unknown_chat_and_bad_html_are_rejected_over_http(emu: BotApiEmulator) -> None:
    assert call(emu, "sendMessage", chat_id=5, text="hi").json()["description"] == (
        "Bad Request: chat not found"
    )
    emu.private_chat(emu.user(5))
    bad = call(emu, "sendMessage", chat_id=5, text="<b>hi", parse_mode="HTML")
    assert bad.status_code == 400
    assert bad.json()["description"] == (
        "Bad Request: can't parse entities: Can't find end tag corresponding to start tag \"b\""
    )
    ok = call(emu, "sendMessage", chat_id=5, text="<b>hi</b>", parse_mode="HTML")
    assert ok.json()["result"]["text"] == "hi"
    assert len(emu.rejected) == 2
    assert emu.messages(5)[0].html == "<b>hi</b>"


def test_json_bodies_and_query_strings_are_accepted(emu: BotApiEmulator) -> None:
    emu.private_chat(emu.user(7))
    with httpx.Client() as client:
        url = f"{emu.base_url}/bot{emu.token}"
        assert client.post(f"{url}/sendMessage", json={"chat_id": 7, "text": "j"}).json()["ok"]
        assert client.get(f"{url}/sendMessage", params={"chat_id": "7", "text": "q"}).json()["ok"]
    assert [m.text for m in emu.messages(7)] == ["j", "q"]
    assert [m.message_id for m in emu.messages(7)] == [1, 2]


def test_text_limits_count_utf16_after_entity_parsing(emu: BotApiEmulator) -> None:
    emu.private_chat(emu.user(9))
    escaped = "<b>" + "&amp;" * 4096 + "</b>"  # 20k raw characters, 4096 after parsing
    assert call(emu, "sendMessage", chat_id=9, text=escaped, parse_mode="HTML").json()["ok"]
    assert call(emu, "sendMessage", chat_id=9, text="x" * 4096).json()["ok"]
    assert call(emu, "sendMessage", chat_id=9, text="😀" * 2048).json()["ok"]
    for text in ("x" * 4097, "😀" * 2048 + "x"):  # the emoji text is only 2049 Python chars
        too_long = call(emu, "sendMessage", chat_id=9, text=text).json()
        assert too_long["description"] == "Bad Request: message is too long"
    empty = call(emu, "sendMessage", chat_id=9, text="<b></b>", parse_mode="HTML").json()
    assert empty["description"] == "Bad Request: message text is empty"
    assert len(emu.rejected) == 3
    assert len(emu.messages(9)) == 3


def test_caption_edit_and_button_data_limits(emu: BotApiEmulator) -> None:
    """The limits a third-party Bot API emulator needed patching for: 1024-character captions,
    4096 on an edit too, 64 bytes of callback_data, and the 400s of edits."""
    emu.private_chat(emu.user(11))
    photo = call(emu, "sendPhoto", chat_id=11, photo="p", caption="c" * 1025).json()
    assert photo["description"] == "Bad Request: message caption is too long"
    sent = call(emu, "sendMessage", chat_id=11, text="hi").json()["result"]["message_id"]
    edit = call(emu, "editMessageText", chat_id=11, message_id=sent, text="x" * 4097).json()
    assert edit["description"] == "Bad Request: message is too long"
    button = {"inline_keyboard": [[{"text": "b", "callback_data": "é" * 33}]]}  # 66 bytes
    data = call(emu, "sendMessage", chat_id=11, text="t", reply_markup=button).json()
    assert data["description"] == "Bad Request: BUTTON_DATA_INVALID"
    gone = call(emu, "editMessageReplyMarkup", chat_id=11, message_id=sent + 50).json()
    assert gone["description"] == "Bad Request: message to edit not found"
    same = call(emu, "editMessageText", chat_id=11, message_id=sent, text="hi").json()
    assert same["description"].startswith("Bad Request: message is not modified: specified")
    assert len(emu.rejected) == 4, "not modified is a repeated press, not the bot's mistake"


def long_poll(emu: BotApiEmulator, **params: Any) -> tuple[threading.Thread, list[Any]]:
    """getUpdates on a thread of its own; the list gets its result once it returns."""
    got: list[Any] = []
    data = {k: json.dumps(v) for k, v in params.items()}
    url = f"{emu.base_url}/bot{emu.token}/getUpdates"

    def poll() -> None:
        with httpx.Client(timeout=60) as client:
            got.append(client.post(url, data=data).json()["result"])

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    return thread, got


def test_long_poll_wakes_on_injection_and_confirms_by_offset(emu: BotApiEmulator) -> None:
    chat = emu.private_chat(user := emu.user(11))
    polling, got = long_poll(emu, timeout=30)
    emu.wait_for_calls("getUpdates", 1)  # returns once the poll waits, releasing the lock
    emu.send_text(chat, user, "hello")
    polling.join(10)  # a bound for a poll that does not wake; it would wait its 30 s
    assert not polling.is_alive(), "the long poll did not wake on the update"
    first = got[0]
    assert first[0]["message"]["text"] == "hello"  # held until it came, not answered empty
    again = call(emu, "getUpdates", timeout=0).json()["result"]
    assert again == first  # not confirmed yet
    polling, got = long_poll(emu, offset=first[0]["update_id"] + 1, timeout=30)
    emu.wait_for_calls("getUpdates", 3)
    emu.send_text(chat, user, "again")
    polling.join(10)
    assert not polling.is_alive(), "the long poll did not wake on the update"
    assert [u["message"]["text"] for u in got[0]] == ["again"]  # "hello" was confirmed
    after = call(emu, "getUpdates", offset=got[0][0]["update_id"] + 1, timeout=1).json()
    assert after["result"] == []  # its timeout ran out with nothing new
    assert emu.rejected == []


def test_fail_next_serves_injected_faults(emu: BotApiEmulator) -> None:
    emu.fail_next("getMe", retry_after=3)
    flood = call(emu, "getMe")
    assert flood.status_code == 429
    assert flood.json()["parameters"] == {"retry_after": 3}
    assert call(emu, "getMe").json()["result"]["username"] == "tidings_test_bot"
    emu.fail_next(
        "sendMessage", 400, "Bad Request: group chat was upgraded", migrate_to_chat_id=-1007
    )
    migrated = call(emu, "sendMessage", chat_id=-7, text="hi")
    assert migrated.status_code == 400
    assert migrated.json()["parameters"] == {"migrate_to_chat_id": -1007}
    assert emu.rejected == []  # injected faults are not the bot's fault


def test_channel_posts_topics_replies_and_callbacks(emu: BotApiEmulator) -> None:
    channel = emu.channel(-1001, "News")
    forum = emu.group(-1002, "Forum", supergroup=True, is_forum=True)
    user = emu.user(3)
    post = emu.send_text(channel, None, "breaking")
    topic = emu.send_text(forum, user, "/topics@tidings_test_bot", message_thread_id=77)
    reply = call(emu, "sendMessage", chat_id=-1002, text="ok", message_thread_id=77,
                 reply_parameters={"message_id": topic["message_id"]}).json()["result"]  # fmt: skip
    assert (reply["message_thread_id"], reply["is_topic_message"]) == (77, True)
    assert reply["reply_to_message"]["text"] == "/topics@tidings_test_bot"
    assert emu.messages(-1002)[0].message_thread_id == 77
    updates = call(emu, "getUpdates").json()["result"]
    assert updates[0]["channel_post"]["sender_chat"]["id"] == -1001
    assert "from" not in updates[0]["channel_post"]
    assert updates[1]["message"]["entities"] == [{"type": "bot_command", "offset": 0, "length": 24}]
    assert post["message_id"] == 1 and reply["message_id"] == 2
    query = emu.press_button(forum, user, reply["message_id"], "x")
    assert call(emu, "answerCallbackQuery", callback_query_id=query).json()["ok"]
    again = call(emu, "answerCallbackQuery", callback_query_id=query).json()
    assert again["description"].startswith("Bad Request: query is too old")
    assert emu.answered_callbacks(query) == [{"callback_query_id": query}]
    assert len(emu.rejected) == 1


# -- python-telegram-bot end to end -----------------------------------------------------------


@pytest.mark.asyncio
async def test_real_ptb_bot_round_trip(
    emu: BotApiEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without this, PTB 22 warns (an error under -W error) while building RetryAfter.
    monkeypatch.setenv("PTB_TIMEDELTA", "1")
    user = emu.user(42, first_name="Ann", username="ann")
    chat = emu.private_chat(user)
    group = emu.group(-100500, "Readers", supergroup=True)
    emu.set_member_status(-100500, 42, "administrator")
    bot = Bot(emu.token, base_url=f"{emu.base_url}/bot")
    async with bot:
        me = await bot.get_me()
        assert (me.is_bot, me.username, me.id) == (True, "tidings_test_bot", 123456)

        keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Open", callback_data="open:1")]])
        sent = await bot.send_message(
            42, "<b>Hi</b> &amp; <a href='https://x.org'>bye</a>", parse_mode="HTML",
            reply_markup=keyboard,
        )  # fmt: skip
        assert sent.text == "Hi & bye"
        assert [(e.type, e.offset, e.length) for e in sent.entities] == [
            (MessageEntity.BOLD, 0, 2), (MessageEntity.TEXT_LINK, 5, 3)
        ]  # fmt: skip
        assert sent.reply_markup == keyboard
        (stored,) = emu.messages(42)
        assert stored.reply_markup == keyboard.to_dict()
        assert stored.parse_mode == "HTML"

        edited = await bot.edit_message_text(
            "<i>new</i>", chat_id=42, message_id=sent.message_id, parse_mode="HTML"
        )
        assert isinstance(edited, Message) and edited.text == "new"
        assert edited.reply_markup is None  # no reply_markup in the edit drops the keyboard
        assert (emu.messages(42)[0].edits, emu.messages(42)[0].text) == (1, "new")
        with pytest.raises(BadRequest, match=r"^Message is not modified"):
            await bot.edit_message_text(
                "<i>new</i>", chat_id=42, message_id=sent.message_id, parse_mode="HTML"
            )
        with pytest.raises(BadRequest, match=r"^Message to edit not found"):
            await bot.edit_message_reply_markup(chat_id=42, message_id=sent.message_id + 99)
        with pytest.raises(BadRequest, match=r"^Can't parse entities: unsupported start tag"):
            await bot.send_message(42, "a < b", parse_mode="HTML")
        # "not modified" is what a second press of the same button gets: not the bot's mistake
        assert [r["method"] for r in emu.rejected] == [
            "editMessageReplyMarkup", "sendMessage"
        ]  # fmt: skip
        emu.rejected.clear()

        emu.send_text(chat, user, "/start@tidings_test_bot now")
        (update,) = await bot.get_updates(timeout=5)
        assert update.message is not None
        assert update.message.text == "/start@tidings_test_bot now"
        (entity,) = update.message.entities
        assert (entity.type, entity.offset, entity.length) == (MessageEntity.BOT_COMMAND, 0, 23)
        assert update.message.parse_entity(entity) == "/start@tidings_test_bot"

        query_id = emu.press_button(chat, user, sent.message_id, "open:1")
        (update,) = await bot.get_updates(offset=update.update_id + 1, timeout=5)
        query = update.callback_query
        assert query is not None and isinstance(query.message, Message)
        assert (query.data, query.message.text) == ("open:1", "new")
        await query.answer("Done")
        assert emu.answered_callbacks(query_id) == [{"callback_query_id": query_id, "text": "Done"}]

        member = await bot.get_chat_member(group["id"], 42)
        assert isinstance(member, ChatMemberAdministrator)
        await bot.set_my_commands(
            [("start", "Start"), ("topics", "Your topics")], language_code="en"
        )
        assert [c["command"] for c in emu.commands("en")] == ["start", "topics"]
        assert emu.commands() == []

        await bot.send_document(42, b"%PDF-1.4", filename="brief.pdf", caption="<b>PDF</b>",
                                parse_mode="HTML")  # fmt: skip
        assert emu.messages(42)[-1].text == "PDF"
        assert emu.calls[-1][1]["document"].filename == "brief.pdf"

        emu.fail_next("sendMessage", retry_after=2)
        with pytest.raises(RetryAfter) as flood:
            await bot.send_message(42, "flood")
        assert flood.value.retry_after == dt.timedelta(seconds=2)
    assert emu.rejected == []
    assert emu.errors == []


@pytest.mark.asyncio
async def test_ptb_application_polls_and_replies(emu: BotApiEmulator) -> None:
    """The Updater's own sequence (deleteWebhook, long polls, final confirm) runs cleanly."""

    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None and update.effective_user is not None
        await update.message.reply_html(
            f"<b>Hi</b> {html.escape(update.effective_user.first_name)}"
        )

    app = Application.builder().token(emu.token).base_url(f"{emu.base_url}/bot").build()
    app.add_handler(CommandHandler("start", start))
    user = emu.user(7, first_name="<Ann & Bob>")
    chat = emu.private_chat(user)
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling()
        emu.send_text(chat, user, "/start")
        (reply,) = await asyncio.to_thread(emu.wait_for_messages, 7, 1, 5.0)
        await app.updater.stop()
        await app.stop()
    assert reply.text == "Hi <Ann & Bob>"
    assert reply.html == "<b>Hi</b> &lt;Ann &amp; Bob&gt;"
    methods = [name for name, _ in emu.calls]
    assert methods[:3] == ["getMe", "deleteWebhook", "getUpdates"]
    assert emu.rejected == []
    with pytest.raises(AssertionError, match="expected 2 messages in chat 7"):
        emu.wait_for_messages(7, 2, timeout=0.1)


@pytest.mark.asyncio
async def test_ptb_downloads_user_documents_and_uploads_its_own(emu: BotApiEmulator) -> None:
    user = emu.user(44)
    chat = emu.private_chat(user)
    opml = b'<opml version="2.0"><body/></opml>'
    injected = emu.send_document(chat, user, opml, "feeds.opml", caption="/import@tidings_test_bot",
                                 mime_type="text/x-opml")  # fmt: skip
    emu.send_text(chat, user, "these", reply_to_message_id=injected["message_id"])
    bot = Bot(emu.token, base_url=f"{emu.base_url}/bot", base_file_url=f"{emu.base_url}/file/bot")
    async with bot:
        sent_doc, reply = await bot.get_updates(timeout=5)
        assert sent_doc.message is not None and reply.message is not None
        document = sent_doc.message.document
        assert document is not None
        assert (document.file_name, document.mime_type, document.file_size) == (
            "feeds.opml", "text/x-opml", len(opml)
        )  # fmt: skip
        (entity,) = sent_doc.message.caption_entities
        assert (entity.type, entity.offset, entity.length) == (MessageEntity.BOT_COMMAND, 0, 24)
        replied = reply.message.reply_to_message
        assert replied is not None and replied.document == document

        file = await bot.get_file(document.file_id)
        assert file.file_path == f"{emu.base_url}/file/bot{emu.token}/documents/file_1.opml"
        assert await file.download_as_bytearray() == bytearray(opml)
        with pytest.raises(BadRequest, match=r"^Invalid file_id$"):
            await bot.get_file("no-such-file")

        sent = await bot.send_document(
            44, document=InputFile(b"<opml/>", filename="x.opml"), caption="2 sources"
        )
        stored = emu.messages(44)[-1]
        assert (stored.document, stored.file_name) == (b"<opml/>", "x.opml")
        assert (stored.text, stored.method) == ("2 sources", "sendDocument")
        assert sent.document is not None and sent.document.file_name == "x.opml"
        again = await bot.send_document(44, sent.document.file_id)  # re-sent by file_id
        assert emu.messages(44)[-1].document == b"<opml/>"
        assert again.document is not None and again.document.file_id == sent.document.file_id
        own = await bot.get_file(sent.document.file_id)
        assert await own.download_as_bytearray() == bytearray(b"<opml/>")
    with httpx.Client() as client:
        files = f"{emu.base_url}/file/bot"
        assert client.get(f"{files}{emu.token}/documents/file_1.opml").content == opml
        assert client.get(f"{files}999:WRONG/documents/file_1.opml").status_code == 401
        assert client.get(f"{files}{emu.token}/documents/file_9.opml").status_code == 404
        getme = client.get(f"{emu.base_url}/bot{emu.token}/getMe")  # method GETs still work
        assert getme.json()["result"]["username"] == "tidings_test_bot"
    assert [r["method"] for r in emu.rejected] == ["getFile"]
    assert emu.errors == []


# -- sending limits, latency, random faults, blocked chats ------------------------------------


def test_two_sends_to_one_chat_within_a_second_get_429(emu: BotApiEmulator) -> None:
    emu.private_chat(emu.user(21))
    emu.enforce_limits = True
    assert call(emu, "sendMessage", chat_id=21, text="one").json()["ok"]
    assert call(emu, "sendChatAction", chat_id=21, action="typing").json()["ok"]  # not a send
    flood = call(emu, "sendMessage", chat_id=21, text="two")
    assert flood.status_code == 429
    assert flood.json() == {
        "ok": False, "error_code": 429, "description": "Too Many Requests: retry after 1",
        "parameters": {"retry_after": 1},
    }  # fmt: skip
    assert [m.text for m in emu.messages(21)] == ["one"]
    assert len(emu.send_times(21)) == 1
    assert (emu.too_many_requests, emu.rejected) == (1, [])
    assert [(chat, windows) for _, chat, windows in emu.throttled] == [(21, "chat")]
    emu.enforce_limits = False  # toggled live
    assert call(emu, "sendMessage", chat_id=21, text="three").json()["ok"]
    assert emu.max_rate(chat_id=21) == 2  # would have broken the limit: tests can tell


@pytest.mark.asyncio
async def test_ptb_gets_retry_after_and_succeeds_after_waiting_it() -> None:
    with BotApiEmulator(enforce_limits=True) as emu:
        emu.private_chat(emu.user(22))
        async with Bot(emu.token, base_url=f"{emu.base_url}/bot") as bot:
            first = await bot.send_message(22, "one")
            with pytest.raises(RetryAfter) as flood:
                await bot.edit_message_text("edited", chat_id=22, message_id=first.message_id)
            await asyncio.sleep(flood.value.retry_after.total_seconds())
            await bot.edit_message_text("edited", chat_id=22, message_id=first.message_id)
        assert len(emu.send_times(22)) == 2  # accepted with limits on: the window had passed
        assert (emu.too_many_requests, emu.rejected) == (1, [])
        assert emu.messages(22)[0].edits == 1


def test_overall_limit_allows_30_sends_in_any_second() -> None:
    with BotApiEmulator(enforce_limits=True) as emu, httpx.Client() as client:
        url = f"{emu.base_url}/bot{emu.token}/sendMessage"
        for chat_id in range(1, 32):
            emu.private_chat(emu.user(chat_id))
        codes = [client.post(url, data={"chat_id": n, "text": "x"}).status_code
                 for n in range(1, 32)]  # fmt: skip
        assert codes == [200] * 30 + [429]  # the 31st within the first's second
        assert emu.max_rate() == 30  # reaches the limit without exceeding it
        assert emu.too_many_requests == 1
        assert [(chat, windows) for _, chat, windows in emu.throttled] == [(31, "overall")]
        assert emu.messages(31) == [] and emu.rejected == []


def test_paid_broadcast_goes_past_30_a_second_up_to_its_own_limit() -> None:
    """allow_paid_broadcast: 1,000 a second (here 40, scaled) over all sends; the free 30
    still bind a send without it, counted over free sends only."""
    limits = Limits(paid_per_second=40)
    with BotApiEmulator(enforce_limits=True, limits=limits) as emu, httpx.Client() as client:
        url = f"{emu.base_url}/bot{emu.token}/sendMessage"
        for chat_id in range(1, 80):
            emu.private_chat(emu.user(chat_id))

        def send(chat_id: int, paid: bool) -> int:
            data = {"chat_id": chat_id, "text": "x"}
            if paid:
                data["allow_paid_broadcast"] = "true"
            return client.post(url, data=data).status_code

        assert [send(n, paid=False) for n in range(1, 32)] == [200] * 30 + [429]
        assert [send(n, paid=True) for n in range(32, 43)] == [200] * 10 + [429]  # 30 + 10
        assert emu.paid_sends == 10 and emu.max_rate() == 40
        assert [windows for _, _, windows in emu.throttled] == ["overall", "paid"]


def test_a_paid_send_the_stars_cannot_cover_is_refused_with_a_400(emu: BotApiEmulator) -> None:
    emu.private_chat(emu.user(5))
    emu.set_star_balance(0.2)
    answers = [call(emu, "sendMessage", chat_id=5, text="x", allow_paid_broadcast=True).json()
               for _ in range(3)]
    assert [a["ok"] for a in answers] == [True, True, False]
    assert answers[2]["error_code"] == 400 and "BALANCE_TOO_LOW" in answers[2]["description"]
    assert emu.star_tenths == 0 and emu.paid_sends == 2 and len(emu.messages(5)) == 2
    assert call(emu, "sendMessage", chat_id=5, text="free").json()["ok"]  # free sends go on


def test_group_limit_counts_a_sliding_minute_per_group() -> None:
    limits = Limits(per_group_per_minute=3, per_chat_per_second=100)
    with BotApiEmulator(enforce_limits=True, limits=limits) as emu:
        emu.group(-100, "Readers", supergroup=True)
        emu.channel(-200, "News")
        emu.private_chat(emu.user(23))
        assert [call(emu, "sendMessage", chat_id=-100, text=str(i)).status_code
                for i in range(4)] == [200, 200, 200, 429]  # fmt: skip
        retry_after = call(emu, "sendMessage", chat_id=-100, text="x").json()["parameters"]
        assert 59 <= retry_after["retry_after"] <= 60  # the real wait, not the 1 s default
        assert call(emu, "sendMessage", chat_id=-200, text="other group").json()["ok"]
        assert all(call(emu, "sendMessage", chat_id=23, text="dm").json()["ok"] for _ in range(5))
        assert len(emu.send_times(-100)) == 3 and len(emu.messages(-100)) == 3
        assert emu.max_rate(window=60, chat_id=-100) == 3
        assert emu.too_many_requests == 2


@pytest.mark.asyncio
async def test_latency_delays_responses_without_serialising_them() -> None:
    with BotApiEmulator(latency=0.4) as emu:
        for chat_id in (24, 25):
            emu.private_chat(emu.user(chat_id))
        url = f"{emu.base_url}/bot{emu.token}"
        async with httpx.AsyncClient() as client:
            assert (await client.post(f"{url}/getMe")).json()["ok"]
            assert emu.held == []  # only sends and edits are slow
            replies = await asyncio.gather(
                *(client.post(f"{url}/sendMessage", data={"chat_id": n, "text": "x"})
                  for n in (24, 25))
            )  # fmt: skip
        assert all(r.json()["ok"] for r in replies)
        assert emu.held == [("sendMessage", 0.4)] * 2
        assert emu.peak_held == 2  # in parallel: both held at once, not one after the other


def test_random_faults_fail_that_share_of_calls(emu: BotApiEmulator) -> None:
    emu.private_chat(emu.user(26))
    emu.random_faults("sendMessage", rate=1.0, status=502)
    replies = [call(emu, "sendMessage", chat_id=26, text="x") for _ in range(3)]
    assert [r.status_code for r in replies] == [502] * 3
    assert replies[0].json() == {"ok": False, "error_code": 502, "description": "Bad Gateway"}
    emu.random_faults("sendMessage", rate=1.0, status=429, retry_after=4)
    assert call(emu, "sendMessage", chat_id=26, text="x").json()["parameters"] == {
        "retry_after": 4
    }  # fmt: skip
    emu.random_faults("sendMessage", rate=0)
    assert all(call(emu, "sendMessage", chat_id=26, text="x").json()["ok"] for _ in range(3))
    assert (emu.injected_faults, emu.too_many_requests, emu.rejected) == (4, 0, [])
    assert len(emu.messages(26)) == 3

    def pattern(seed: int) -> list[int]:
        emu.random_faults("getMe", rate=0.5, status=500, seed=seed)
        with httpx.Client() as client:
            url = f"{emu.base_url}/bot{emu.token}/getMe"
            return [client.post(url).status_code for _ in range(20)]

    assert pattern(1) == pattern(1)  # seeded: reproducible
    assert {200, 500} <= set(pattern(1))


@pytest.mark.asyncio
async def test_malformed_next_performs_the_call_but_answers_garbage(emu: BotApiEmulator) -> None:
    emu.private_chat(emu.user(28))
    emu.malformed_next("sendMessage", count=2)
    assert call(emu, "sendMessage", chat_id=28, text="raw").json() == {
        "ok": True, "result": "garbage"}
    async with Bot(emu.token, base_url=f"{emu.base_url}/bot") as bot:
        with pytest.raises(AttributeError):  # not a TelegramError: PTB cannot read a Message
            await bot.send_message(28, "sent anyway")
        message = await bot.send_message(28, "answered")
    assert message.message_id == 3
    assert [m.text for m in emu.messages(28)] == ["raw", "sent anyway", "answered"]
    assert (emu.rejected, emu.errors, emu.injected_faults) == ([], [], 2)


@pytest.mark.asyncio
async def test_blocked_chats_and_migration_raise_ptb_errors(emu: BotApiEmulator) -> None:
    emu.private_chat(emu.user(27))
    emu.group(-27, "Old group")
    emu.group(-1000027, "Readers", supergroup=True)
    emu.block(27)
    emu.block(-27)
    async with Bot(emu.token, base_url=f"{emu.base_url}/bot") as bot:
        with pytest.raises(Forbidden, match=r"^Forbidden: bot was blocked by the user$"):
            await bot.send_message(27, "hi")
        with pytest.raises(Forbidden, match=r"^Forbidden: bot was kicked from the group chat$"):
            await bot.send_chat_action(-27, "typing")
        emu.unblock(27)
        await bot.send_message(27, "back")

        emu.fail_next(
            "sendMessage", status=400, migrate_to_chat_id=-1000027,
            description="Bad Request: group chat was upgraded to a supergroup chat",
        )  # fmt: skip
        with pytest.raises(ChatMigrated) as migrated:
            await bot.send_message(-27, "hi")
        assert migrated.value.new_chat_id == -1000027
        await bot.send_message(migrated.value.new_chat_id, "hi")

        emu.random_faults(rate=1.0, status=502)
        with pytest.raises(NetworkError, match="Bad Gateway"):
            await bot.send_message(27, "lost")
    assert [m.text for m in emu.messages(27)] == ["back"]
    assert [m.text for m in emu.messages(-1000027)] == ["hi"]
    assert emu.messages(-27) == []
    assert (emu.rejected, emu.errors, emu.injected_faults) == ([], [], 2)


def test_fail_always_fails_every_call_until_recovered(emu: BotApiEmulator) -> None:
    emu.fail_always("setMyCommands", 503)
    emu.fail_next("getMe", 500)
    emu.fail_always("getMe", 502)
    commands = {"commands": [{"command": "start", "description": "Start"}]}
    replies = [call(emu, "setMyCommands", **commands) for _ in range(4)]
    assert [r.status_code for r in replies] == [503] * 4
    assert replies[0].json() == {
        "ok": False, "error_code": 503, "description": "Service Unavailable"
    }  # fmt: skip
    assert call(emu, "getMe").status_code == 502  # the outage comes before fail_next
    emu.recover("setMyCommands")
    assert call(emu, "setMyCommands", **commands).json() == {"ok": True, "result": True}
    assert emu.commands() == commands["commands"]
    assert call(emu, "getMe").status_code == 502, "other methods stay down"
    emu.recover()
    assert call(emu, "getMe").json()["ok"], "recover() also drops pending fail_next faults"
    assert (emu.injected_faults, emu.rejected) == (6, [])


def test_fail_always_can_hang_up_and_answer_429(emu: BotApiEmulator) -> None:
    emu.fail_always("getUpdates", hang_up=True)
    with httpx.Client() as client, pytest.raises(httpx.RemoteProtocolError):
        client.post(f"{emu.base_url}/bot{emu.token}/getUpdates")
    assert [name for name, _ in emu.calls] == ["getUpdates"]
    emu.fail_always("getUpdates", 429, retry_after=7)
    flood = call(emu, "getUpdates")
    assert (flood.status_code, flood.json()["parameters"]) == (429, {"retry_after": 7})
    emu.recover("getUpdates")
    assert call(emu, "getUpdates").json() == {"ok": True, "result": []}


def test_slow_next_answers_late_but_takes_effect_at_once(emu: BotApiEmulator) -> None:
    emu.private_chat(emu.user(28))
    emu.slow_next("sendMessage", 5.0)
    url = f"{emu.base_url}/bot{emu.token}/sendMessage"
    with httpx.Client(timeout=0.5) as client:
        with pytest.raises(httpx.ReadTimeout):
            client.post(url, data={"chat_id": 28, "text": "late"})
        assert [m.text for m in emu.messages(28)] == ["late"], "sent, though never confirmed"
        assert client.post(url, data={"chat_id": 28, "text": "on time"}).json()["ok"]
        assert emu.held == [("sendMessage", 5.0)], "only the next call was slow"


def test_slow_answers_count_and_do_not_hold_up_stop() -> None:
    emu = BotApiEmulator().start()
    emu.slow_next("getMe", 1.0, count=2)
    url = f"{emu.base_url}/bot{emu.token}/getMe"
    with httpx.Client() as client:
        for _ in range(3):
            assert client.post(url).json()["ok"]
    assert emu.held == [("getMe", 1.0), ("getMe", 1.0)]  # two slow answers, then a prompt one
    assert emu.cut_short == 0  # both were held their full second
    emu.slow_next("getMe", 60)
    thread = threading.Thread(target=lambda: hung_up_or_answered(emu), daemon=True)
    thread.start()
    emu.wait_for_calls("getMe", 4)
    emu.stop()  # returns once the slow answer is released, not after its 60 s
    assert emu.held[-1] == ("getMe", 60)
    # the handler counts the cut as its wait ends, racing stop()'s return under load
    wait_until(lambda: emu.cut_short == 1)


def hung_up_or_answered(emu: BotApiEmulator) -> None:
    """A call whose connection stop() may drop before the released answer is written."""
    with contextlib.suppress(httpx.HTTPError):
        call(emu, "getMe")


@pytest.mark.parametrize(
    ("token", "status", "description"),
    [("654321:REVOKED", 401, "Unauthorized"), ("not-a-token", 404, "Not Found")],
)
def test_rejected_tokens_are_answered_as_telegram_does(
    emu: BotApiEmulator, token: str, status: int, description: str
) -> None:
    answer = call(emu, "getMe", token=token)
    assert (answer.status_code, answer.json()["description"]) == (status, description)


def test_a_fixed_port_lets_a_client_wait_for_a_late_server() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with httpx.Client() as client:
        with pytest.raises(httpx.ConnectError):
            client.post(f"http://127.0.0.1:{port}/bot123456:TEST-TOKEN/getMe")
        with BotApiEmulator(port=port) as emu:
            assert emu.base_url == f"http://127.0.0.1:{port}"
            assert client.post(f"{emu.base_url}/bot{emu.token}/getMe").json()["ok"]
