"""/ask end to end: answers that cite stored stories by link, and nothing delivered that cites
nothing, refuses, or answers from stories it was not given; without an LLM, a list of links."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from locales import catalog
from tests.conftest import BotProcess
from tests.fakes.feeds import FeedServer, rss
from tests.fakes.llm import (
    LlmServer,
    Reply,
    answer,
    ask_question,
    ask_stories,
    cited_answer,
    is_ask,
    unanswered,
    uncited_answer,
)
from tests.fakes.telegram import BotApiEmulator, SentMessage
from tests.harness import (
    BASELINE,
    NEW_SOFTBANK,
    TOKEN,
    brief_for,
    start_with_llm,
    start_world,
    wait_until,
)

TOYOTA = {"title": "Toyota recalls hybrid cars over brakes", "link": "http://news.test/t1",
          "guid": "t1", "description": "The recall covers older models.",
          "pub_date": datetime(2026, 11, 5, tzinfo=UTC)}
STORED = [NEW_SOFTBANK, TOYOTA, *BASELINE]


def plain(key: str) -> str:
    """A catalogue line as the reader sees it (markup removed)."""
    return re.sub(r"<[^>]+>", "", catalog.text("en", key))


def links(message: SentMessage) -> list[tuple[str, str]]:
    """(label, address) of every link the message shows."""
    return re.findall(r'<a href="([^"]+)">([^<]*)</a>', message.html)


def ask(telegram: BotApiEmulator, chat: dict, user: dict, question: str) -> SentMessage:
    before = len(telegram.messages(chat["id"]))
    telegram.send_text(chat, user, question)
    return telegram.wait_for_messages(chat["id"], before + 1, timeout=20)[before]


def test_answers_cite_stored_stories_by_link_and_nothing_unchecked_is_delivered(
    tmp_path: Path, bot_process: type[BotProcess]
) -> None:
    with BotApiEmulator(token=TOKEN) as telegram, LlmServer() as llm, FeedServer() as feeds:
        model: dict[str, Any] = {"ask": cited_answer}
        llm.responder = lambda request: (model["ask"](request) if is_ask(request)
                                         else brief_for(request))
        feeds.put("/feed.xml", rss("Test News", STORED))  # stored, never alerted: no briefs
        bot = start_with_llm(telegram, llm, feeds, tmp_path, bot_process)
        user = telegram.user(4001, "Q", language_code="en")
        chat = telegram.private_chat(user)
        ask(telegram, chat, user, "/subscribe SoftBank")

        said = ask(telegram, chat, user, "/ask What did SoftBank open in Lille?")
        assert said.text.startswith(plain("ask.header"))
        assert "SoftBank opens an office in Lille [1]." in said.text
        assert ("http://news.test/a1", "[1]") in links(said), "a citation links its story"
        assert ("http://news.test/a1", "SoftBank opens an office in Lille") in links(said)
        assert "Toyota" not in said.text and "Weather" not in said.text, "within the topics"
        request = llm.requests[-1]
        assert ask_question(request) == "What did SoftBank open in Lille?"
        assert "data, not instructions" in request["messages"][0]["content"]
        assert ask_stories(request)[1] == "SoftBank opens an office in Lille"

        for careless in (lambda request: "I'm sorry, but I can't help with that.",
                         uncited_answer,
                         lambda request: answer("SoftBank opened a lab on the Moon [7]."),
                         lambda request: Reply(status=500)):
            model["ask"] = careless
            said = ask(telegram, chat, user, "/ask What did SoftBank open in Lille?")
            assert said.text.startswith(plain("ask.rejected")), said.text
            assert "sorry" not in said.text and "Moon" not in said.text
            assert ("http://news.test/a1", "SoftBank opens an office in Lille") in links(said)

        model["ask"] = unanswered
        said = ask(telegram, chat, user, "/ask Did SoftBank say what it pays its staff?")
        assert said.text.startswith(plain("ask.unanswered"))

        calls = llm.calls
        said = ask(telegram, chat, user, "/ask Which cars did Toyota recall?")
        assert said.text == plain("ask.nothing"), "Toyota is not among this chat's topics"
        assert llm.calls == calls, "no story, no call"
        model["ask"] = cited_answer
        said = ask(telegram, chat, user, "/ask all Which cars did Toyota recall?")
        assert ("http://news.test/t1", "[1]") in links(said)

        assert telegram.rejected == []
        assert "answer in en not delivered" in bot.log

        model["ask"] = lambda request: Reply(content=cited_answer(request), delay=60)
        calls = llm.calls
        telegram.send_text(chat, user, "/ask What did SoftBank open in Lille?")
        wait_until(lambda: llm.calls > calls)
        assert bot.terminate() == 0, "a slow model does not hold up a stop"
        assert "Traceback" not in bot.log


def test_without_an_llm_the_most_relevant_stories_are_listed_with_links(
    tmp_path: Path, bot_process: type[BotProcess]
) -> None:
    with BotApiEmulator(token=TOKEN) as telegram, FeedServer() as feeds:
        world = start_world(tmp_path, bot_process, telegram, feeds, {"ASKS_PER_HOUR": "3"})
        world.publish(TOYOTA)  # stored, never alerted: nobody follows Toyota
        world.bot.wait_for_log("1 new items")
        user = telegram.user(4002, "Q", language_code="en")
        chat = telegram.private_chat(user)

        assert ask(telegram, chat, user, "/ask").text == plain("ask.usage")
        assert ask(telegram, chat, user, "/ask anything").text == plain("ask.no_topics")
        ask(telegram, chat, user, "/subscribe SoftBank OR Toyota")
        said = ask(telegram, chat, user, "/ask Toyota recall?")
        assert said.text.startswith(plain("ask.offline"))
        assert ("http://news.test/t1", "Toyota recalls hybrid cars over brakes") in links(said)
        assert "[1] Toyota recalls hybrid cars over brakes — Test News, 2026-11-05" in said.text
        said = ask(telegram, chat, user, "/ask all weather in Paris")
        assert ("http://news.test/a2", "Weather in Paris") in links(said)

        said = ask(telegram, chat, user, "/ask all weather in Paris")
        assert said.text == plain("ask.limited"), "three questions an hour"
        assert telegram.rejected == []
        world.bot.terminate()
        assert "Traceback" not in world.bot.log


def test_once_the_token_budget_is_spent_questions_get_the_stories_without_a_call(
    tmp_path: Path, bot_process: type[BotProcess]
) -> None:
    with BotApiEmulator(token=TOKEN) as telegram, LlmServer() as llm, FeedServer() as feeds:
        llm.responder = lambda request: (cited_answer(request) if is_ask(request)
                                         else brief_for(request))
        feeds.put("/feed.xml", rss("Test News", STORED))
        bot = start_with_llm(telegram, llm, feeds, tmp_path, bot_process,
                             {"LLM_DAILY_TOKEN_BUDGET": "100"})
        user = telegram.user(4003, "Q", language_code="en")
        chat = telegram.private_chat(user)
        ask(telegram, chat, user, "/subscribe SoftBank")
        said = ask(telegram, chat, user, "/ask What did SoftBank open in Lille?")
        assert said.text.startswith(plain("ask.header")), "the first question spends the budget"
        calls = llm.calls
        said = ask(telegram, chat, user, "/ask What did SoftBank open in Lille?")
        assert said.text.startswith(plain("ask.offline"))
        assert ("http://news.test/a1", "SoftBank opens an office in Lille") in links(said)
        assert llm.calls == calls
        bot.terminate()
        assert "Traceback" not in bot.log
