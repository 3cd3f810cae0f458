"""/trend's data and chart: counts match the stored stories, and the PNG is a real chart."""

from __future__ import annotations

import io
import struct
from datetime import UTC, date, datetime, timedelta
from functools import partial

import pytest
from matplotlib import image
from sqlalchemy import Engine

from handlers.trend import Asked, BadDays, read_arguments
from locales import catalog
from news import trend as charts
from news.briefs import Brief as BriefContent
from news.trend import trend_chart
from storage.db import session_scope
from storage.models import Brief, Item, Story

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
EN = partial(catalog.text, "en")


def store(
    engine: Engine, title: str, at: datetime, *, sources: int = 1, level: int | None = None,
    language: str = "en", headline: str | None = None, published: datetime | None = None,
) -> int:
    """A story first seen at `at`, reported by `sources` items (dated `published`, if given),
    with an LLM brief at `level`."""
    with session_scope(engine) as session:
        story = Story(title=title, created_at=at)
        session.add(story)
        session.flush()
        assert story.id is not None
        for n in range(sources):
            session.add(Item(source_name=f"S{n}", story_id=story.id, guid=f"{story.id}-{n}",
                             link=f"http://news.test/{story.id}/{n}", title=title,
                             summary="Text of the article.", fetched_at=at,
                             published_at=published))
        if level is not None:
            brief = BriefContent(headline=headline or title, core_point="…",
                                 tracking_level=level)  # type: ignore[arg-type]
            session.add(Brief(story_id=story.id, language=language, origin="llm",
                              payload=brief.model_dump_json()))
        return story.id


def day(n: int) -> date:
    """n days before NOW's day."""
    return NOW.date() - timedelta(days=n)


def test_counts_per_day_and_level_are_the_stored_stories(engine: Engine) -> None:
    at = NOW - timedelta(hours=1)
    store(engine, "SoftBank buys a chip maker", at, level=1, headline="SoftBank rachète")
    store(engine, "SoftBank and Arm", at - timedelta(minutes=5), level=2)
    store(engine, "SoftBank quarterly results", at - timedelta(days=2), level=3)
    store(engine, "SoftBank in three papers", at - timedelta(days=2), sources=3)  # offline: 1
    store(engine, "Markets: SoftBank mentioned", at - timedelta(days=5))  # offline: 2
    store(engine, "Weather in Paris", at, level=1)  # does not match
    store(engine, "SoftBank long ago", at - timedelta(days=40), level=1)  # outside 30 days
    store(engine, "SoftBank in French only", at, level=1, language="fr")  # no en brief: offline

    chart = trend_chart(engine, EN, language="en", timezone="UTC", query="softbank",
                        days=30, now=NOW)

    found = chart.trend
    assert found.days == [day(n) for n in range(29, -1, -1)]
    expected = {1: {day(0): 1, day(2): 1}, 2: {day(0): 2, day(5): 1}, 3: {day(2): 1}}
    # "SoftBank in French only": one source, topic in the headline: offline 3 raised to 2.
    for level, per_day in expected.items():
        assert found.counts[level] == [per_day.get(d, 0) for d in found.days], level
    assert found.total == 6
    assert (found.busiest, found.busiest_count) == (day(0), 3)
    assert found.top_headline == "SoftBank rachète"  # level 1 wins, shown as the brief has it
    assert chart.png is not None and chart.png.startswith(b"\x89PNG\r\n\x1a\n")


def test_days_are_the_chats_local_days(engine: Engine) -> None:
    late = datetime(2026, 11, 20, 23, 30, tzinfo=UTC)  # already the 21st in Shanghai
    store(engine, "SoftBank late news", late, level=2)
    utc = trend_chart(engine, EN, language="en", timezone="UTC", query="softbank",
                      days=7, now=NOW).trend
    shanghai = trend_chart(engine, EN, language="en", timezone="Asia/Shanghai",
                           query="softbank", days=7, now=NOW).trend
    assert utc.busiest == date(2026, 11, 20) and shanghai.busiest == date(2026, 11, 21)
    assert len(utc.days) == 7 and utc.days[-1] == NOW.date()


def test_a_story_counts_on_the_day_it_was_published_not_the_day_it_was_stored(
    engine: Engine,
) -> None:
    """A new source's backlog is stored today; its stories belong to the days they came out."""
    at = NOW - timedelta(hours=1)
    store(engine, "SoftBank backlog story", at, level=2, published=at - timedelta(days=3))
    store(engine, "SoftBank news of today", at, level=2, published=at - timedelta(minutes=5))
    store(engine, "SoftBank undated story", at - timedelta(days=1), level=2)  # first seen
    store(engine, "SoftBank from long ago", at, level=2, published=at - timedelta(days=60))
    found = trend_chart(engine, EN, language="en", timezone="UTC", query="softbank",
                        days=7, now=NOW).trend
    assert found.counts[2] == [0, 0, 0, 1, 0, 1, 1], "3 days ago, yesterday, today"
    assert found.total == 3, "published before the window: not in it, though stored today"
    assert found.busiest_count == 1


def test_nothing_matched_draws_nothing(engine: Engine) -> None:
    store(engine, "Weather in Paris", NOW, level=1)
    chart = trend_chart(engine, EN, language="en", timezone="UTC", query="softbank",
                        days=30, now=NOW)
    assert chart.png is None and chart.trend.total == 0 and chart.trend.busiest is None


def png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def pixels_near(png: bytes, color: str) -> int:
    """How many pixels have this bar colour (within rounding)."""
    rgb = [int(color[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    data = image.imread(io.BytesIO(png), format="png")
    diff = abs(data[:, :, 0] - rgb[0]) + abs(data[:, :, 1] - rgb[1]) + abs(data[:, :, 2] - rgb[2])
    return int((diff < 0.02).sum())


def labels(language: str, topic: str = "SoftBank OR 软银", days: int = 30) -> charts.Labels:
    return charts.Labels.of(lambda key, **values: catalog.text(language, key, **values),
                            topic, days)


def trend_of(counts: dict[int, list[int]]) -> charts.Trend:
    days = charts.window(NOW.date(), len(counts[1]))
    return charts.Trend(days, {1: counts[1], 2: counts[2], 3: counts[3]}, days[-1], 1, "x")


@pytest.mark.parametrize("language", ["en", "zh", "ar", "ja"])
def test_png_decodes_at_the_expected_size(language: str) -> None:
    png = charts.render_png(trend_of({1: [1, 0, 2], 2: [0, 3, 1], 3: [2, 2, 0]}),
                            labels(language), language)
    assert png_size(png) == (charts.WIDTH, charts.HEIGHT)
    data = image.imread(io.BytesIO(png), format="png")
    assert data.shape[:2] == (charts.HEIGHT, charts.WIDTH)


def test_the_bars_show_the_levels_that_are_there() -> None:
    only_red = charts.render_png(trend_of({1: [2, 1], 2: [0, 0], 3: [0, 0]}), labels("en"), "en")
    mixed = charts.render_png(trend_of({1: [2, 1], 2: [0, 4], 3: [0, 0]}), labels("en"), "en")
    yellow, red = charts.COLORS[2], charts.COLORS[1]
    legend = pixels_near(only_red, yellow)  # the legend's swatch is there either way
    assert pixels_near(mixed, yellow) > legend + 10000  # the bar: thousands of pixels
    assert pixels_near(only_red, red) > legend + 10000


@pytest.mark.filterwarnings(r"ignore:Glyph \d+ .*missing from font")
@pytest.mark.parametrize("language", ["en", "de", "fr", "zh", "ar"])
def test_the_title_stays_clear_of_the_legend(language: str) -> None:
    """A long topic fills the title; the legend must neither cover it nor the bars."""
    topic = "(SoftBank OR Nvidia OR Arm) semiconductor investment Europe"
    figure = charts.draw(trend_of({1: [3, 0, 2], 2: [0, 4, 1], 3: [2, 2, 9]}),
                         labels(language, topic=topic, days=90), language)
    renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
    figure.draw(renderer)
    [axes] = figure.axes
    legend = axes.get_legend() or figure.legends[0]
    titles = [*figure.texts, axes.title, axes._left_title, axes._right_title]
    boxes = [text.get_window_extent(renderer) for text in titles if text.get_text()]
    assert boxes, "a title"
    frame = legend.get_window_extent(renderer)
    assert not any(frame.overlaps(box) for box in boxes)
    assert not frame.overlaps(axes.get_window_extent(renderer)), "nor over the bars"
    assert all(box.x0 >= 0 and box.x1 <= charts.WIDTH for box in [*boxes, frame]), "inside"


def test_labels_are_in_the_chats_language() -> None:
    zh = labels("zh")
    assert "近 30 天" in zh.title and "SoftBank OR 软银" in zh.title
    assert zh.levels == {1: "重点追踪", 2: "持续关注", 3: "一般了解"}
    amp = labels("en", topic="AT&T")
    assert amp.title.startswith("AT&T:")  # plain text in a chart, not HTML escapes


def test_day_labels_follow_the_language() -> None:
    assert charts.day_label(date(2026, 11, 21), "en") == "Nov 21"
    assert charts.day_label(date(2026, 11, 21), "zh") == "11月21日"


@pytest.mark.parametrize(
    ("raw", "asked"),
    [("", Asked("")), ("2", Asked("2")), ("1 14", Asked("1", 14)),
     ("SoftBank 60", Asked("SoftBank", 60)), ("SoftBank", Asked("SoftBank")),
     ('"data center" OR datacenter 7', Asked('"data center" OR datacenter', 7)),
     ("SoftBank France", Asked("SoftBank France")), ("1 90", Asked("1", 90))],
)
def test_arguments(raw: str, asked: Asked) -> None:
    assert read_arguments(raw) == asked


@pytest.mark.parametrize("raw", ["1 0", "1 91", "1 abc", "SoftBank -3", "SoftBank 2.5", "1 999"])
def test_bad_days_are_refused(raw: str) -> None:
    with pytest.raises(BadDays):
        read_arguments(raw)


def test_without_a_cjk_font_the_chart_is_still_drawn(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A machine with no CJK font (no fonts-noto-cjk) gets boxes for CJK, not an error."""
    monkeypatch.setattr(charts, "CJK_FAMILIES", ())
    monkeypatch.setattr(charts, "CJK_FILES", ())
    charts._font_families.cache_clear()
    try:
        png = charts.render_png(trend_of({1: [1, 2], 2: [0, 1], 3: [1, 0]}), labels("zh"), "zh")
    finally:
        charts._font_families.cache_clear()
    assert png_size(png) == (charts.WIDTH, charts.HEIGHT)
    assert "install fonts-noto-cjk" in caplog.text
