"""The aiohttp transport under PTB's Bot: what a call carries, and how each failure reaches the bot.

Driven through a real `telegram.Bot` against the Bot API emulator, so a wrong multipart body, a
timeout that never fires or an error that leaks the token shows as the bot would see it.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from telegram import Bot
from telegram.error import NetworkError, TimedOut

from telegram_http import AiohttpRequest
from tests.fakes.telegram import BotApiEmulator

TOKEN = "987654:AAH-secret-transport-token"


@pytest.fixture
def api() -> Iterator[BotApiEmulator]:
    with BotApiEmulator(token=TOKEN) as emulator:
        yield emulator


@pytest_asyncio.fixture
async def bot(api: BotApiEmulator) -> AsyncIterator[Bot]:
    bot = Bot(TOKEN, base_url=f"{api.base_url}/bot", request=AiohttpRequest(read_timeout=1.0))
    async with bot:
        yield bot


def _chat(api: BotApiEmulator) -> int:
    return int(api.private_chat(api.user(4242, "Ada"))["id"])


@pytest.mark.asyncio
async def test_a_message_and_an_upload_arrive_as_sent(api: BotApiEmulator, bot: Bot) -> None:
    chat = _chat(api)
    await bot.send_message(chat, "<b>Ümlaut</b> &amp; 重点追踪", parse_mode="HTML")
    await bot.send_document(chat, b"\x89PNG\r\n\x00binary", filename="trend.png",
                            caption="chart")
    text, upload = api.messages(chat)
    assert text.text == "Ümlaut & 重点追踪"
    assert upload.document == b"\x89PNG\r\n\x00binary" and upload.file_name == "trend.png"
    assert upload.text == "chart"


@pytest.mark.asyncio
async def test_an_answer_later_than_the_read_timeout_is_timed_out(
    api: BotApiEmulator, bot: Bot
) -> None:
    chat = _chat(api)
    api.slow_next("sendMessage", 3.0)
    with pytest.raises(TimedOut):
        await bot.send_message(chat, "late", read_timeout=0.3)


@pytest.mark.asyncio
async def test_a_server_error_is_telegrams_own_error_not_a_transport_one(
    api: BotApiEmulator, bot: Bot
) -> None:
    chat = _chat(api)
    api.fail_next("sendMessage", 502, "Bad Gateway")
    with pytest.raises(NetworkError, match="Bad Gateway"):
        await bot.send_message(chat, "x")
    await bot.send_message(chat, "again")  # the session survives the failure
    assert [m.text for m in api.messages(chat)] == ["again"]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.asyncio
async def test_a_refused_connection_is_a_network_error_without_the_token() -> None:
    request = AiohttpRequest()
    await request.initialize()
    bot = Bot(TOKEN, base_url=f"http://127.0.0.1:{_closed_port()}/bot", request=request)
    try:
        with pytest.raises(NetworkError) as raised:
            await bot.send_message(1, "x")
    finally:
        await request.shutdown()
    assert "secret-transport" not in str(raised.value)
    assert str(raised.value).startswith("aiohttp.ClientConnectorError")


@pytest.mark.asyncio
async def test_a_call_before_initialize_says_so_instead_of_hanging() -> None:
    with pytest.raises(RuntimeError, match="not initialized"):
        await AiohttpRequest().do_request("http://127.0.0.1:9/x", "POST")
