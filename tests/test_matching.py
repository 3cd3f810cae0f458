"""The Aho-Corasick matcher gives exactly the answers of checking every query one by one."""

from __future__ import annotations

import random

from news.matching import Matcher, Topic, searchable
from news.topics import (
    Node,
    Or,
    QueryError,
    Term,
    fold,
    matches,
    needs_a_term,
    parse,
    positive_terms,
    prefilter,
)

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


def test_word_by_word_folding_is_folding_the_whole_text() -> None:
    rng = random.Random(11)
    alphabet = ("aé e\u0301 \u00a8\u200b\u00a0\tЁйё软银ガカ\u3099ﬁΣσς İ ß\u0308\u00ad\n™①"
                + "".join(chr(c) for c in range(0x2000, 0x2010)))
    for _ in range(20_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        assert searchable(text) == " ".join(fold(text).split()), repr(text)


def test_changes_in_place_give_the_answers_of_a_fresh_build() -> None:
    rng = random.Random(5)
    terms = [*WORDS, "zeta", "omega", "Tesla", "ダイキン", "новый"]

    def query() -> str:
        a, b = (f'"{w}"' if " " in w else w for w in rng.sample(terms, 2))
        return rng.choice([a, f"{a} OR {b}", f"{a} -{b}", f"{a} {b}", f"{a} OR -{b}", '"bad'])

    live: dict[int, Topic] = {}
    matcher = Matcher([])
    compaction = None
    texts = [" ".join(rng.choice([*terms, "the", "news"]) for _ in range(10)) for _ in range(60)]
    for step in range(600):
        roll = rng.random()
        if roll < 0.5 or not live:
            topic_id = rng.randrange(1, 120)
            live[topic_id] = Topic(topic_id, rng.randrange(5), rng.randrange(2), query())
            matcher.add(live[topic_id])
        elif roll < 0.8:
            topic_id = rng.choice(list(live))
            del live[topic_id]
            matcher.remove(topic_id)
        else:
            matcher.remove(rng.randrange(200, 300))  # never followed: nothing happens
        if step % 97 == 0:
            compaction = matcher.compaction()  # a snapshot; changes go on meanwhile
        elif step % 97 == 40 and compaction is not None:
            matcher.install(compaction())
        fresh = Matcher(live.values())
        assert len(matcher.topics) == len(live)
        for text in rng.sample(texts, 5):
            assert matcher.match(text) == fresh.match(text), (step, text)


def test_a_term_glued_to_a_combining_mark_is_not_a_whole_word() -> None:
    matcher = Matcher([Topic(1, 1, 0, "क"), Topic(2, 2, 0, "SoftBank -crypto")])
    assert matcher.match("कि") == [], "a Devanagari vowel sign belongs to its word"
    assert [t.id for t in matcher.match("क ख")] == [1]
    assert [t.id for t in matcher.match("SoftBank news")] == [2]
    assert matcher.match("SoftBank crypto news") == [], "a term only ever excluded is searched"


def test_the_prefilter_reads_queries_as_the_parser_does() -> None:
    """Tokens alone decide a query's needles and whether one found term is a match: never for
    a query the parser refuses (its needles may be a superset: it never passes the exact
    check), never for one with an AND or an exclusion, never other needles."""
    rng = random.Random(9)
    parts = ["a", "OR", "(", ")", '"b c"', "~", "软银", "d", "-e", "-", '""', "f&g", "OR)"]

    def only_or(node: Node) -> bool:
        return isinstance(node, Term) or (isinstance(node, Or)
                                          and all(only_or(child) for child in node.nodes))

    for _ in range(20_000):
        query = " ".join(rng.choice(parts) for _ in range(rng.randint(1, 6)))
        plan = prefilter(query)
        try:
            node = parse(query)
        except QueryError:
            assert not plan.any_of and not plan.always, query
            continue
        assert plan.needles == {t.needle for t in positive_terms(node)}, query
        assert plan.always == (not needs_a_term(node)), query
        assert plan.any_of == only_or(node), query
