"""Topics followed by meaning (issue 23): `/subscribe ~…` over the real bot process, with the
LLM emulator's /v1/embeddings (hashed concept vectors, tests.fakes.concepts)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from tests.conftest import BotProcess
from tests.fakes.feeds import FeedServer
from tests.fakes.llm import LlmServer, Reply
from tests.fakes.telegram import BotApiEmulator
from tests.harness import (
    TOKEN,
    World,
    current,
    last_says,
    say,
    start_world,
    wait_until,
)

TOPIC = "AI infrastructure in Europe"
# Shares no word with TOPIC: only its concepts (server farm, machine learning, Frankfurt).
SERVER_FARM = {
    "title": "Hyperscale server farm for machine learning opens near Frankfurt",
    "link": "http://news.test/s1", "guid": "s1",
    "description": "The campus will train neural networks for cloud customers.",
    "pub_date": datetime(2026, 11, 22, tzinfo=UTC),
}
OFF_TOPIC = {
    "title": "Bitcoin rallies as traders pile into tokens", "link": "http://news.test/s2",
    "guid": "s2", "description": "Crypto exchanges report record volumes.",
    "pub_date": datetime(2026, 11, 22, tzinfo=UTC),
}


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


def embeddings_env(llm: LlmServer) -> dict[str, str]:
    return {"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": llm.base_url,
            "EMBEDDING_MODEL": "fake-embed", "EMBEDDING_DIMENSIONS": "256",
            "SEMANTIC_THRESHOLD": "0.5"}


def test_a_semantic_topic_is_alerted_by_a_story_sharing_none_of_its_words(
    tmp_path: Path, bot_process: type[BotProcess]
) -> None:
    assert not _words(TOPIC) & _words(f"{SERVER_FARM['title']} {SERVER_FARM['description']}")
    with BotApiEmulator(token=TOKEN) as telegram, FeedServer() as feeds, LlmServer() as llm:
        llm.responder = lambda request: "not json"  # briefs fall back to the source's excerpt
        world = start_world(tmp_path, bot_process, telegram, feeds, embeddings_env(llm))
        # the new source's first entries are embedded (never alerted), for previews
        wait_until(lambda: any("Weather in Paris" in text for text in llm.embedded_texts),
                   timeout=20)
        user = telegram.user(7801, "Eva", language_code="en")
        chat = telegram.private_chat(user)
        # the endpoint fails as the meaning is read: refused, and nothing is saved
        llm.queue_embeddings(Reply(status=503))
        assert "did not answer" in say(telegram, chat, user, "/subscribe ~football transfers")
        assert "football" not in say(telegram, chat, user, "/topics")
        reply = say(telegram, chat, user, f"/subscribe ~{TOPIC} -crypto")
        # shown as a reader reads it, not as stored (`~"…"@0.50 -crypto`)
        assert f"Following by meaning: ~ {TOPIC} -crypto." in reply
        assert "at least 0.50 similar" in reply
        # the test before the first alert: the week's stories, nearest first, with similarities
        lines = [line for line in reply.splitlines() if " · " in line]
        assert [line.split(" · ")[1] for line in lines] == [
            "Weather in Paris", "SoftBank opens an office in Lille"]
        # Paris is in Europe, but only that: just below 0.50 (shown cut, never rounded up)
        assert lines[0].startswith("▫️ 0.49 · ") and lines[1].startswith("▫️ 0.00 · ")
        assert "would have alerted in the last 7 days: 0." in reply
        message = telegram.messages(chat["id"])[-1]
        assert message.reply_markup is not None
        labels = [b["text"] for row in message.reply_markup["inline_keyboard"] for b in row]
        assert labels == ["Tighten to 0.55 (−0)", "Loosen to 0.45 (+1)"]
        loosen = message.reply_markup["inline_keyboard"][0][1]["callback_data"]
        assert "Threshold now 0.45" in world.press(chat, user, message, loosen)
        last_says("at least 0.45 similar", telegram, chat)
        edited = telegram.messages(chat["id"])[-1]
        assert edited.reply_markup is not None
        assert "✅ 0.49 · Weather in Paris" in edited.text
        assert "would have alerted in the last 7 days: 1." in edited.text
        topics = say(telegram, chat, user, "/topics")
        assert f"1. ~ {TOPIC} -crypto · 1 in 7 days" in topics and "@0." not in topics
        listed = telegram.messages(chat["id"])[-1].reply_markup or {}
        assert [b["text"] for row in listed["inline_keyboard"] for b in row] == [
            f"📌 Track closely: ~ {TOPIC} -crypto"]
        tighten = edited.reply_markup["inline_keyboard"][0][0]["callback_data"]
        world.press(chat, user, edited, tighten)
        wait_until(lambda: "at least 0.50 similar" in current(telegram, message).text)

        # the embeddings endpoint fails twice (an error, then vectors of the wrong size): the
        # new stories wait for the next round, and are alerted then
        llm.queue_embeddings(Reply(status=500), Reply(dimensions=17))
        before = len(telegram.messages(chat["id"]))
        world.publish(SERVER_FARM, OFF_TOPIC)
        alert = telegram.wait_for_messages(chat["id"], before + 1, timeout=30)[-1]
        assert "Hyperscale server farm" in alert.text, alert.text
        assert f" · ~ {TOPIC} -crypto\n" in alert.text and '~"' not in alert.text
        farm = str(SERVER_FARM["title"])
        wait_until(lambda: sum(farm in text for text in llm.embedded_texts) >= 3)
        admin = telegram.user(1001, "Ada")
        stats = say(telegram, telegram.private_chat(admin), admin, "/stats")
        counted = re.search(r"LLM calls: (\d+), failed: (\d+)", stats)
        assert counted, stats  # embedding calls count with the briefs' (and in the budget)
        assert int(counted.group(2)) >= 2 and int(counted.group(1)) >= 4
        # /why as a reply to the alert: the similarity and the threshold
        telegram.send_text(chat, user, "/why", reply_to_message_id=alert.message_id)
        why = telegram.wait_for_messages(chat["id"], len(telegram.messages(chat["id"])) + 1,
                                         timeout=20)[-1].text
        match = re.search(rf"Topic ~ {TOPIC} -crypto: similarity (0\.\d\d), threshold 0\.50",
                          why)
        assert match and float(match.group(1)) >= 0.5, why
        # the off-topic story reached no one; asked about by link, /why says how far it was
        answer = say(telegram, chat, user, f"/why {OFF_TOPIC['link']}")
        assert f"~ {TOPIC} -crypto: the story's similarity to it is 0.00, below" in answer
        assert all("Bitcoin" not in m.text for m in telegram.messages(chat["id"])
                   if m.text.startswith(("🔴", "🟠", "🟡", "⚪", "🔵")))
        reply = say(telegram, chat, user, "/unsubscribe ~ai  INFRASTRUCTURE in europe")
        assert f"Stopped following ~ {TOPIC} -crypto." in reply
        assert telegram.rejected == []
        assert "Traceback" not in world.bot.log


def test_semantic_topics_are_refused_without_embeddings(world: World) -> None:
    telegram = world.telegram
    user = telegram.user(7802, "Ola", language_code="en")
    chat = telegram.private_chat(user)
    reply = say(telegram, chat, user, f"/subscribe ~{TOPIC}")
    assert "needs an embeddings model" in reply and "EMBEDDING_MODEL" in reply
    assert "No topics" in say(telegram, chat, user, "/topics") or \
        TOPIC not in say(telegram, chat, user, "/topics")
    assert "after ~" in say(telegram, chat, user, "/subscribe ~ -crypto")
