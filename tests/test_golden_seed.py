"""Golden test from seed 000: its English article, briefed as its Chinese part, keeps its shape.

The seed (tests/fixtures/seeds/, see the README there) is the product's showcase brief. Its
Chinese part is parsed into the answer the LLM emulator gives; the article goes through the
real BriefWriter over HTTP, and the alert is compared, as Telegram would show it, with the seed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import openai
import pytest

from locales import catalog
from news.briefs import Brief, BriefWriter, StoryText, Written, adjusted_level
from news.render import LIMIT, SourceRef, Translate, render_brief
from tests.fakes.llm import LlmServer
from tests.fakes.telegram_html import parse_html_entities, utf16_len
from tests.harness import ARTICLE_START, SECTION_KEYS, SEED, Seed, blocks, read_seed

TOPICS = ["SoftBank"]
SOURCES = [SourceRef("Maddyness", "https://www.maddyness.com/2025/02/10/hauts-de-france-ia/",
                     datetime(2025, 2, 10, 9, 0, tzinfo=UTC))]


def shown(message: str) -> str:
    """The text Telegram would show (raises if it would refuse the HTML), within its limit."""
    text, _ = parse_html_entities(message)
    assert utf16_len(text) <= LIMIT
    return text


def t_for(language: str) -> Translate:
    return partial(catalog.text, language)


@pytest.fixture(scope="module")
def seed() -> Seed:
    return read_seed()


@pytest.fixture
def llm() -> Iterator[LlmServer]:
    with LlmServer() as server:
        yield server


async def brief_through_the_writer(llm: LlmServer, seed: Seed, answer: dict[str, Any]) -> Written:
    """The seed's article through the real BriefWriter, the emulator answering `answer`."""
    llm.responder = lambda request: json.dumps(answer, ensure_ascii=False)
    client = openai.AsyncOpenAI(base_url=llm.base_url, api_key="k", max_retries=0)
    async with client:
        writer = BriefWriter(client, "tiny", retry_delay=0)
        return await writer.write(StoryText(seed.title, seed.article, 1), "zh")


def render(written: Written, language: str) -> str:
    brief = written.brief
    level = adjusted_level(brief, written.origin, TOPICS)
    return shown(render_brief(brief, origin=written.origin, level=level, topics=TOPICS,
                              sources=SOURCES, t=t_for(language)))


def expected_layout(brief: Brief, language: str) -> list[list[str]]:
    """The alert as the seed lays it out, with `language`'s labels around the same data."""
    t = t_for(language)
    return [
        [f"🔴 {t('level.1')} · SoftBank"],
        [brief.headline],
        [t("brief.core_point"), brief.core_point],
        [t("brief.key_players"), *(f"• {p.name} ({p.name_in_source}) — {p.role}"
                                   for p in brief.key_players)],
        [t("brief.industry_impact"), *(f"• {i.sector}{t('impact.separator')}"
                                       f"{t('impact.' + i.level)} — {i.why}"
                                       for i in brief.industry_impact)],
        [t("brief.tracking"), f"🔴 {t('level.1')} — {brief.tracking_reason}"],
        [t("brief.sources"), "• Maddyness, 2025-02-10"],
    ]


def test_the_fixture_is_the_shared_seed(seed: Seed) -> None:
    shared = Path(__file__).resolve().parents[2] / "shared" / "seeds" / SEED.name
    if not shared.exists():
        pytest.skip("no ../shared beside this checkout (a fresh clone): the fixture stands alone")
    assert SEED.read_bytes() == shared.read_bytes()


def test_the_seed_parses_into_a_valid_brief(seed: Seed) -> None:
    brief = Brief.model_validate(seed.answer)
    assert seed.labels == [catalog.text("zh", key) for key in SECTION_KEYS]
    assert [p.name_in_source for p in brief.key_players] == ["SoftBank", "Hauts-de-France"]
    assert seed.article.startswith(ARTICLE_START) and seed.article.endswith("AI corridor.")
    assert seed.refusal.startswith("很抱歉")


@pytest.mark.asyncio
async def test_zh_alert_has_the_seed_shape(llm: LlmServer, seed: Seed) -> None:
    written = await brief_through_the_writer(llm, seed, seed.answer)
    assert written.origin == "llm", "the seed's brief passes every check"
    schema = llm.requests[0]["response_format"]["json_schema"]["schema"]
    assert "name_in_source" in schema["properties"]["key_players"]["items"]["required"]

    text = render(written, "zh")
    layout = blocks(text)
    assert layout == expected_layout(written.brief, "zh")
    assert layout[0] == ["🔴 重点追踪 · SoftBank"]
    assert [block[0] for block in layout[2:6]] == seed.labels, "the four sections, seed order"
    players = layout[3][1:]
    assert "• 软银 (SoftBank) — 日本跨国科技投资集团,以大规模技术投资闻名,总部位于东京。" in players
    assert any(line.startswith("• 上法兰西大区 (Hauts-de-France) — ") for line in players)
    # the player, impact and tracking lines are the seed's own lines, bullets and flag aside
    label_players, label_impact, label_tracking = seed.labels[1:]
    assert players == [line.replace("- ", "• ", 1) for line in seed.lines[label_players]]
    separator = catalog.text("zh", "impact.separator")  # the seed's ASCII colon, set as zh sets it
    assert layout[4][1:] == [line.replace("- ", "• ", 1).replace(":", separator, 1)
                             for line in seed.lines[label_impact]]
    assert layout[5][1:] == [f"🔴 {line}" for line in seed.lines[label_tracking]]
    assert seed.refusal not in text and "抱歉" not in text


@pytest.mark.asyncio
@pytest.mark.parametrize("language", ["fr", "en"])
async def test_the_same_data_has_the_same_structure_in_other_languages(
    llm: LlmServer, seed: Seed, language: str
) -> None:
    written = await brief_through_the_writer(llm, seed, seed.answer)
    zh, other = blocks(render(written, "zh")), blocks(render(written, language))
    assert other == expected_layout(written.brief, language)
    assert [len(block) for block in other] == [len(block) for block in zh]
    labels = [block[0] for block in other[2:]]
    assert labels == [catalog.text(language, key) for key in [*SECTION_KEYS, "brief.sources"]]
    assert not set(labels) & {block[0] for block in zh}, "every label is translated"
    assert other[3][1:] == zh[3][1:], "the players read the same: 软银 (SoftBank) — …"
    high = catalog.text(language, "impact.high")
    assert all(f": {high} — " in line for line in other[4][1:3]), other[4]


@pytest.mark.asyncio
async def test_localized_players_missing_from_the_article_are_dropped_and_only_they(
    llm: LlmServer, seed: Seed
) -> None:
    extra = [
        {"name": "孙正义", "name_in_source": "孙正义", "role": "软银创始人"},
        {"name": "泽维尔·贝特朗", "name_in_source": "Xavier Bertrand", "role": "上法兰西大区主席"},
        {"name": "软银愿景基金", "name_in_source": "SoftBank 愿景基金", "role": "软银旗下基金"},
        {"name": "巴黎萨克雷", "name_in_source": "Paris-Saclay", "role": "竞争中的科技集群"},
        {"name": "法国", "name_in_source": "法国", "role": "国家"},
    ]
    answer = {**seed.answer, "key_players": [*seed.answer["key_players"], *extra]}
    written = await brief_through_the_writer(llm, seed, answer)
    assert written.origin == "llm"
    kept = [(p.name, p.name_in_source) for p in written.brief.key_players]
    assert kept == [("软银", "SoftBank"), ("上法兰西大区", "Hauts-de-France"),
                    ("泽维尔·贝特朗", "Xavier Bertrand"), ("巴黎萨克雷", "Paris-Saclay")]
    players = blocks(render(written, "zh"))[3]
    assert players[0] == "关键参与者" and len(players) == 5
    assert "• 泽维尔·贝特朗 (Xavier Bertrand) — 上法兰西大区主席" in players
    assert not any("孙正义" in line or "愿景基金" in line for line in players)
