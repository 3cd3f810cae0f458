"""The weekly brief through the real bot: `/settings weekly`, then at the chat's weekly time
one message per topic, in English and in French, one LLM call per topic, week and language."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from babel.dates import get_day_names

from tests.conftest import BotProcess
from tests.fakes.feeds import FeedServer, rss
from tests.fakes.llm import LlmServer, is_weekly, weekly_answer
from tests.fakes.telegram import BotApiEmulator
from tests.harness import BASELINE, NEW_SOFTBANK, TOKEN, brief_for, say, start_with_llm, wait_until


def answer(request: dict[str, Any]) -> str:
    return weekly_answer(request) or brief_for(request)


def now_in_a_minute_that_lasts() -> datetime:
    """The bot reads the setting within the same minute (a time set for this minute is due
    at once): not in the last seconds of one."""
    wait_until(lambda: datetime.now(UTC).second < 45, timeout=20)
    return datetime.now(UTC)


def test_weekly_brief_in_two_languages(tmp_path: Path, bot_process: type[BotProcess]) -> None:
    with BotApiEmulator(token=TOKEN) as telegram, LlmServer() as llm, FeedServer() as feeds:
        llm.responder = answer
        feeds.put("/feed.xml", rss("Test News", BASELINE))
        start_with_llm(telegram, llm, feeds, tmp_path, bot_process)
        chats = {}
        for user_id, code in ((3101, "en"), (3102, "en"), (3103, "fr")):
            user = telegram.user(user_id, "R", language_code=code)
            chat = telegram.private_chat(user)
            say(telegram, chat, user, "/subscribe SoftBank")
            chats[user_id] = (chat, user)
        ana_chat, ana = chats[3101]
        say(telegram, ana_chat, ana, "/subscribe !Bertrand")  # tracked closely: first

        feeds.put("/feed.xml", rss("Test News", [NEW_SOFTBANK, *BASELINE]))
        for chat, _user in chats.values():
            wait_until(lambda chat=chat: any("SoftBank pledges" in m.text
                                             for m in telegram.messages(chat["id"])), 30)

        answer_before = say(telegram, ana_chat, ana, "/settings weekly someday 09:00")
        assert "did not understand that weekly setting" in answer_before
        assert "Weekly brief of each topic: off" in say(telegram, ana_chat, ana, "/settings")

        now = now_in_a_minute_that_lasts()
        clock = f"{now:%H:%M}"
        before = {}
        for user_id, (chat, user) in chats.items():
            code = user["language_code"]
            screen = say(telegram, chat, user, f"/settings weekly {now:%a} {clock}".lower())
            day = get_day_names("wide", locale=code)[now.weekday()]
            if code == "en":
                assert f"Weekly brief of each topic: on, {day} at {clock}" in screen
            else:
                assert f"Bilan hebdomadaire de chaque sujet\u202f: activé, le {day} à {clock}" \
                    in screen
            before[user_id] = len(telegram.messages(chat["id"]))

        for user_id, count in ((3101, 2), (3102, 1), (3103, 1)):
            chat = chats[user_id][0]
            telegram.wait_for_messages(chat["id"], before[user_id] + count, timeout=45)

        pinned, softbank = (m.text for m in telegram.messages(ana_chat["id"])[before[3101]:])
        assert pinned.startswith("📌 🗓 Week in review: Bertrand\n"), "track-closely first"
        assert softbank.startswith("🗓 Week in review: SoftBank\n")
        assert "SoftBank had a busy week: the first report set the tone [1]." in softbank
        assert "Who\n• SoftBank — at the centre of the week's news" in softbank
        assert "Alerts this brief draws on\n[1] SoftBank pledges billions for an AI valley" \
            in softbank
        bo_chat = chats[3102][0]
        [bo] = (m.text for m in telegram.messages(bo_chat["id"])[before[3102]:])
        assert bo == softbank, "the second English chat reads the same storyline"
        fr_chat = chats[3103][0]
        [french] = (m.text for m in telegram.messages(fr_chat["id"])[before[3103]:])
        assert french.startswith("🗓 La semaine de SoftBank\n")
        assert "le premier article a donné le ton [1]." in french
        assert "Alertes citées\n[1] SoftBank pledges billions" in french
        assert "À surveiller ensuite\nIl faudra surveiller" in french

        weekly = [(r["messages"][1]["content"].split("\n")[1],
                   "French" in r["messages"][0]["content"]) for r in llm.requests
                  if is_weekly(r)]
        assert sorted(weekly) == [("Bertrand", False), ("SoftBank", False),
                                  ("SoftBank", True)], "one call per topic, week and language"
        for request in (r for r in llm.requests if is_weekly(r)):
            assert "data, not instructions" in request["messages"][0]["content"]
            assert "<<<ARTICLE" in request["messages"][1]["content"]

        assert "did not understand that weekly setting" in say(
            telegram, ana_chat, ana, "/settings weekly mon 25:00")
        english_day = get_day_names("wide", locale="en")[now.weekday()]
        assert f"Weekly brief of each topic: on, {english_day} at {clock}" in say(
            telegram, ana_chat, ana, "/settings"), "bad input changed nothing"
        assert "Weekly brief of each topic: off" in say(telegram, ana_chat, ana,
                                                        "/settings weekly off")
