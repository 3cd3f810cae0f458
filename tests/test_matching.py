"""The Aho-Corasick matcher gives exactly the answers of checking every query one by one."""

from __future__ import annotations

import random

from news.matching import Matcher, Topic, searchable
from news.topics import matches, parse

WORDS = ["SoftBank", "softbank's", "Nvidia", "union", "ion", "AI", "said", "data center",
         "datacenter", "crypto", "软银", "ソフトバンク", "Сбербанк", "données", "mac", "machine",
         "OpenAI", "Hawks", "Lille", "chips"]


def test_word_terms_inside_longer_words_are_not_even_candidates() -> None:
    matcher = Matcher([Topic(1, 1, 0, "ion"), Topic(2, 2, 0, "AI"), Topic(3, 3, 0, "软银")])
    folded = searchable("The union said 软银承诺 again")
    assert [matcher.topics[i].id for i in sorted(matcher.candidates(folded))] == [3]
    assert [t.id for t in matcher.match("AI: the union said")] == [2]


def test_queries_that_need_no_term_are_always_checked() -> None:
    matcher = Matcher([Topic(1, 1, 0, "SoftBank OR -crypto")])
    assert [t.id for t in matcher.match("Weather in Paris")] == [1]
    assert matcher.match("crypto winter") == []


def test_unreadable_stored_queries_are_skipped_not_fatal() -> None:
    matcher = Matcher([Topic(1, 1, 0, '"unclosed'), Topic(2, 2, 0, "SoftBank")])
    assert [t.id for t in matcher.match("SoftBank news")] == [2]


def test_same_answers_as_the_naive_loop_on_random_queries() -> None:
    rng = random.Random(7)
    queries = []
    for _ in range(400):
        a, b, c = (rng.choice(WORDS) for _ in range(3))
        quoted = [f'"{w}"' if " " in w else w for w in (a, b, c)]
        queries.append(rng.choice([quoted[0], f"{quoted[0]} OR {quoted[1]}",
                                   f"{quoted[0]} -{quoted[1]}", f"{quoted[0]} {quoted[1]}",
                                   f"({quoted[0]} OR {quoted[1]}) -{quoted[2]}"]))
    topics = [Topic(n, n, 0, q) for n, q in enumerate(queries)]
    matcher = Matcher(topics)
    for _ in range(300):
        text = " ".join(rng.choice([*WORDS, "the", "a", "news", "Paris"]) for _ in range(12))
        expected = [t.id for t in topics if matches(parse(t.query), text)]
        assert [t.id for t in matcher.match(text)] == expected, text
