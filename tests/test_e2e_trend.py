"""/trend through the real bot: a chart arrives as a photo, and bad input gets an example."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

from matplotlib import image

from news import trend as charts
from tests.harness import NEW_SOFTBANK, World, say

BACKLOG = {"title": "SoftBank sells its robot arm unit to Sony", "link": "http://news.test/b4",
           "guid": "b4", "description": "The unit makes arms for car factories."}


def today_labels(language: str) -> set[str]:
    """Today's (and, near midnight, yesterday's) date as the caption writes it."""
    now = datetime.now(UTC)
    return {charts.day_label(day, language, "MMMEd")
            for day in (now.date(), (now - timedelta(minutes=5)).date())}


def test_trend_sends_a_chart_and_answers_bad_input(world: World) -> None:
    telegram = world.telegram
    user = telegram.user(7501, "Ana", language_code="en")
    chat = telegram.private_chat(user)
    assert "follows no topic yet" in say(telegram, chat, user, "/trend")
    say(telegram, chat, user, "/subscribe SoftBank")
    before = len(telegram.messages(chat["id"]))
    now = datetime.now(UTC)
    # Both stored today; one came out three days ago (a source's backlog): it counts then.
    fresh = {**NEW_SOFTBANK, "pub_date": now - timedelta(minutes=5)}
    world.publish(fresh, {**BACKLOG, "pub_date": now - timedelta(days=3)})
    telegram.wait_for_messages(chat["id"], before + 2, timeout=20)  # the alerts

    caption = say(telegram, chat, user, "/trend 1 7")
    photo = telegram.messages(chat["id"])[-1]
    assert photo.method == "sendPhoto" and photo.document is not None
    assert "SoftBank: stories matched in the last 7 days: 2." in caption
    assert any(f"Busiest day: {label} (1)" in caption for label in today_labels("en")), caption
    assert "Top headline: SoftBank pledges billions" in caption, "the latest of equal days"
    pixels = image.imread(io.BytesIO(photo.document), format="png")
    assert pixels.shape[:2] == (charts.HEIGHT, charts.WIDTH)

    assert "in the last 2 days: 1." in say(telegram, chat, user, "/trend 1 2")
    sony = say(telegram, chat, user, "/trend Sony 5")
    assert "Sony: stories matched in the last 5 days: 1." in sony
    assert "Top headline: SoftBank sells its robot arm unit to Sony" in sony
    for bad in ("/trend 1 0", "/trend 1 91", "/trend 1 abc", "/trend SoftBank 2.5"):
        answer = say(telegram, chat, user, bad)
        assert "DAYS must be a whole number from 1 to 90" in answer, bad
        assert "/trend 1 30" in answer, "with an example"
    assert "no topic number 3" in say(telegram, chat, user, "/trend 3")
    assert "no topic number 0" in say(telegram, chat, user, "/trend 0")
    assert "No story matched Zyxwv" in say(telegram, chat, user, "/trend Zyxwv")
    answer = say(telegram, chat, user, '/trend "data center')
    assert "quotation mark" in answer and "/trend 1 14" in answer

    say(telegram, chat, user, "/lang zh")
    caption = say(telegram, chat, user, "/trend 1 7")
    assert telegram.messages(chat["id"])[-1].method == "sendPhoto"
    assert "近 7 天共 2 篇报道" in caption
    assert any(f"最多的一天：{label}" in caption for label in today_labels("zh"))


def test_weekly_chart_setting_is_off_until_turned_on(world: World) -> None:
    telegram = world.telegram
    user = telegram.user(7502, "Bo", language_code="en")
    chat = telegram.private_chat(user)
    assert "Weekly trend chart with the digest: off" in say(telegram, chat, user, "/settings")
    assert "Weekly trend chart with the digest: on" in say(telegram, chat, user,
                                                          "/settings trend on")
    assert "Weekly trend chart with the digest: off" in say(telegram, chat, user,
                                                           "/settings trend OFF")
    assert "did not understand" in say(telegram, chat, user, "/settings trend maybe")
