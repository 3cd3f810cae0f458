"""Offline key players (news/players.py): names the headline and text share, never guesses."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial

import pytest

from locales import catalog
from news.briefs import StoryText, offline_brief
from news.players import MAX_PLAYERS, named_players
from news.render import render_brief
from tests.fakes.telegram_html import parse_html
from tests.harness import blocks, read_seed

NOW = datetime(2025, 5, 6, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("title", "text", "topics", "players"),
    [
        # several capitalized words in a row, in the text's order
        ("Xavier Bertrand backs SoftBank's AI valley",
         "Regional president Xavier Bertrand said SoftBank’s Vision Fund would invest.", [],
         ["Xavier Bertrand", "SoftBank"]),
        # joiners stay inside a name; "The" opening the sentence does not
        ("Banque de France warns on rates", "The Banque de France said rates would stay high.",
         [], ["Banque de France"]),
        # a capitalized compound is a name on its own; a title-case headline still matches
        ("Paris-Saclay Cluster Bids For New AI Lab", "Officials at Paris-Saclay want the lab.",
         [], ["Paris-Saclay"]),
        # a name opening a sentence, written mid-sentence elsewhere, keeps its first word
        ("Emmanuel Macron meets Masayoshi Son",
         "Emmanuel Macron met the investor. Later, Emmanuel Macron and Masayoshi Son spoke.",
         [], ["Emmanuel Macron", "Masayoshi Son"]),
        # a topic's term, in the text's spelling where it is capitalized mid-sentence
        ("Nvidia opens a lab in Lille", "The chip maker Nvidia chose Lille.", ["nvidia"],
         ["Nvidia"]),
        ("Nvidia opens a lab", "The chip maker Nvidia chose Lille.", ['"nvidia" -crypto'],
         ["Nvidia"]),
        # a term the chat wrote capitalized is a name even where it opens a sentence; an
        # acronym is never taken, from a topic or from a run ("French AI")
        ("Nvidia and AMD race to supply chips for SoftBank's French AI campus",
         "Nvidia and AMD are racing to supply chips for SoftBank's French AI campus.",
         ["Nvidia OR AMD", "SoftBank"], ["Nvidia", "SoftBank"]),
        # CJK: the topic's term, as the source writes it
        ("软银承诺向法国数据中心投资", "软银周一宣布,将向法国数据中心投资。", ["软银 OR SoftBank"],
         ["软银"]),
        ("ソフトバンク、仏データセンターに投資", "ソフトバンクグループは月曜日に発表した。",
         ["ソフトバンク"], ["ソフトバンク"]),
    ],
)
def test_names_found(title: str, text: str, topics: list[str], players: list[str]) -> None:
    assert named_players(title, text, topics) == players


@pytest.mark.parametrize(
    ("title", "text", "topics"),
    [
        # capitalized only because they open a sentence (or a headline)
        ("However markets rallied", "However, markets rallied. Analysts were surprised.", []),
        ("Competing European hubs vie for AI", "Competing European hubs are vying for AI.", []),
        ("In Paris, talks resume", "In Paris talks resumed on Monday.", []),
        ("Regional leaders cheer", "Regional leaders cheered. Regional president spoke.", []),
        # months and weekdays are not players
        ("Monday June rally lifts shares", "Shares rose on Monday June 3 after a March dip.", []),
        ("Lundi Mars: la bourse monte", "La bourse a monté ce Lundi Mars dernier.", []),
        # a title-case headline whose words the text never capitalizes together
        ("Apple Said To Delay Launch", "The company said it would delay the launch.", []),
        # acronyms and lone plain words are not told apart from ordinary words
        ("AI boom lifts US chips", "The AI boom lifted US chip makers and Germany.", []),
        ("France backs Lille", "The plan helps France and Lille.", []),
        # a name the headline does not carry
        ("Chip stocks rise", "Nvidia chief Jensen Huang spoke in Taipei.", []),
        # a topic's term only lowercase, or only opening a sentence
        ("Data center boom", "Data centers come first. A new data center opens.", ["data center"]),
        ("Apple delays its phone", "Apple said the phone is late.", ["apple"]),
        # a CJK topic the headline or the text lacks
        ("软银承诺投资", "公司周一宣布投资。", ["软银"]),
        ("公司周一宣布", "软银周一宣布投资。", ["软银"]),
        # unreadable topics, empty story
        ("SoftBank News", "Nothing here.", ['"', "-", "()"]),
        ("", "", ["SoftBank"]),
        # a run too long to be a name
        (" ".join(f"Word{n}x" for n in range(40)), " ".join(f"Word{n}x" for n in range(40)), []),
    ],
)
def test_nothing_is_guessed(title: str, text: str, topics: list[str]) -> None:
    assert named_players(title, text, topics) == []


def test_at_most_eight_players() -> None:
    names = [f"{first} {last}" for first in ("Ada", "Ben", "Cy") for last in ("Ng", "Ito", "Ruiz",
                                                                            "Sato")]
    names += ["Dee Ong", "Eve Li"]
    text = " and ".join(f"with {name}" for name in names) + "."
    assert named_players(" ".join(names), text) == names[:MAX_PLAYERS]


def test_the_seed_article_names_its_players() -> None:
    seed = read_seed()
    assert named_players(seed.title, seed.article) == ["Hauts-de-France", "SoftBank"]
    assert named_players(seed.title, seed.article, ["SoftBank", "上法兰西"]) == [
        "SoftBank", "Hauts-de-France"]


def test_offline_brief_lists_players_in_source_spelling_without_roles() -> None:
    seed = read_seed()
    brief = offline_brief(StoryText(seed.title, seed.article, 1, topics=("SoftBank",)), now=NOW)
    assert [(p.name, p.name_in_source, p.role) for p in brief.key_players] == [
        ("SoftBank", "SoftBank", ""), ("Hauts-de-France", "Hauts-de-France", "")]
    message = render_brief(brief, origin="offline", level=3, topics=["SoftBank"], sources=[],
                           t=partial(catalog.text, "zh"))
    layout = blocks(parse_html(message))
    assert layout[3] == ["关键参与者", "• SoftBank", "• Hauts-de-France"]


def test_offline_brief_without_names_has_no_players_section() -> None:
    brief = offline_brief(StoryText("Markets rallied", "However, markets rallied.", 1), now=NOW)
    assert brief.key_players == []
    message = render_brief(brief, origin="offline", level=3, topics=[], sources=[],
                           t=partial(catalog.text, "zh"))
    assert "关键参与者" not in parse_html(message)
