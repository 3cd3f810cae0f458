"""Semantic topics below the bot: their syntax, the matcher, the embeddings client against the
LLM emulator (and its failures), storage on both databases, and one round after a poll."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta

import numpy as np
import openai
import pytest
from sqlalchemy import Engine
from sqlmodel import select

from news.embeddings import Embedder, EmbeddingError
from news.ingest import ingest
from news.matching import Matcher, Topic
from news.newsroom import Newsroom
from news.semantic import (
    SemanticMatcher,
    chosen_threshold,
    is_semantic,
    normalized,
    parse_semantic,
    readable,
    topic_label,
)
from news.semantic_round import SemanticCache, embed_round
from news.topics import QueryError
from storage import embeddings, usage
from storage.db import database_now, session_scope
from storage.models import Delivery, LlmUsage
from tests.fakes.concepts import vector
from tests.fakes.llm import LlmServer, Reply
from tests.harness import draft, make_source, subscribe


@pytest.mark.parametrize(("query", "stored"), [
    ("~AI infrastructure in Europe", '~"AI infrastructure in Europe"'),
    ('~"AI infrastructure in Europe" -crypto', '~"AI infrastructure in Europe" -crypto'),
    ("~AI infra@0.4 -crypto -bitcoin", '~"AI infra"@0.40 -crypto -bitcoin'),
    ('~"data  centre"@0.455 (GPU OR TPU) -x', '~"data centre"@0.46 (GPU OR TPU) -x'),
])
def test_semantic_queries_are_stored_canonically(query: str, stored: str) -> None:
    parsed = parse_semantic(query)
    assert parsed.canonical() == stored
    assert parse_semantic(stored) == parsed
    assert is_semantic(stored) and not is_semantic("AI infrastructure")


@pytest.mark.parametrize(("query", "code"), [
    ("~", "semantic_empty"), ('~"" -x', "semantic_empty"), ("~ -crypto", "semantic_empty"),
    ('~"AI', "unbalanced_quote"), ("~AI@1.5", "threshold"), ("~AI@abc", "threshold"),
    ("~AI -(crypto", "unbalanced_paren"), ("~" + "a" * 201, "too_long"),
])
def test_unreadable_semantic_queries_say_why(query: str, code: str) -> None:
    with pytest.raises(QueryError) as raised:
        parse_semantic(query)
    assert raised.value.code == code


def test_the_keyword_matcher_leaves_semantic_topics_to_the_semantic_one() -> None:
    matcher = Matcher([Topic(1, 1, 0, '~"AI"@0.50'), Topic(2, 1, 0, "AI")])
    assert [topic.id for topic in matcher.match('An AI story with "AI" and ~AI')] == [2]


def _unit(values: list[float]) -> np.ndarray:
    return normalized(np.asarray(values, dtype=np.float32))[0]


def test_the_matcher_applies_each_topics_threshold_and_terms() -> None:
    vectors = {"chips": _unit([1, 0, 0]), "crypto": _unit([0, 1, 0])}
    matcher = SemanticMatcher([
        (1, '~"chips"@0.90'), (2, '~"chips"@0.50'), (3, '~"chips"@0.50 -Nvidia'),
        (4, '~"crypto"@0.50'), (5, '~"unembedded"@0.10'), (6, "chips"),
    ], vectors)
    assert matcher.size == 4 + 0  # 1-4; the meaning without a vector waits
    near = np.stack([_unit([0.8, 0.1, 0.1]), _unit([0.6, 0.0, 0.8])])
    found = matcher.match(near, ["TSMC builds a fab", "Nvidia and rain"])
    assert [hit.topic_id for hit in found[0]] == [1, 2, 3]
    # 0.60: not 0.90, and -Nvidia holds 3 back
    assert [(hit.topic_id, round(hit.similarity, 2)) for hit in found[1]] == [(2, 0.6)]
    far = matcher.match(np.stack([_unit([0.3, 0.0, 0.95])]), ["TSMC builds a fab"])
    assert far == [[]]
    wrong_size = matcher.match(np.ones((1, 5), np.float32), ["x"])
    assert wrong_size == [[]]


def test_a_new_topic_starts_at_the_default_or_above_the_weeks_top_two_percent() -> None:
    assert chosen_threshold([0.1, 0.9], 0.5) == 0.5  # too few stories to judge
    assert chosen_threshold([0.2] * 95 + [0.7, 0.72, 0.74, 0.76, 0.8], 0.5) == 0.75
    assert chosen_threshold([0.1] * 100, 0.42) == 0.45  # on the buttons' 0.05 steps


@pytest.fixture
def llm() -> Iterator[LlmServer]:
    with LlmServer() as server:
        yield server


def _embedder(llm: LlmServer, dims: int = 64, timeout: float = 5.0) -> Embedder:
    client = openai.AsyncOpenAI(api_key="k", base_url=llm.base_url, max_retries=0)
    return Embedder(client, "fake-embed", dims, timeout=timeout)


def test_the_emulator_puts_texts_on_one_subject_near_each_other(llm: LlmServer) -> None:
    texts = ["AI infrastructure in Europe", "Hyperscale server farm for machine learning near "
             "Frankfurt", "Rechenzentrum für künstliche Intelligenz in Deutschland",
             "欧洲的人工智能数据中心", "Bitcoin rallies as traders pile in"]
    done = asyncio.run(_embedder(llm).embed(texts))
    assert done.vectors.shape == (5, 64) and done.calls == 1 and done.tokens > 0
    scores = done.vectors @ done.vectors[0]
    assert min(scores[1:4]) > 0.7 and scores[4] < 0.2
    assert llm.embedding_requests[0]["dimensions"] == 64
    assert llm.embedding_requests[0]["model"] == "fake-embed"


@pytest.mark.parametrize("fault", [
    Reply(status=500), Reply(status=429), Reply(status=200, body=b"{not json"),
    Reply(dimensions=17), Reply(delay=2.0),
], ids=["5xx", "429", "bad-json", "wrong-dimensions", "timeout"])
def test_every_failure_of_the_endpoint_is_an_embedding_error(llm: LlmServer,
                                                             fault: Reply) -> None:
    llm.queue_embeddings(fault)
    with pytest.raises(EmbeddingError) as raised:
        asyncio.run(_embedder(llm, timeout=0.5).embed(["a story"]))
    assert raised.value.calls == 1
    assert asyncio.run(_embedder(llm).embed(["a story"])).vectors.shape == (1, 64)


def test_without_a_model_nothing_is_asked(llm: LlmServer) -> None:
    off = Embedder(openai.AsyncOpenAI(api_key="k", base_url=llm.base_url), "")
    assert not off.online
    with pytest.raises(EmbeddingError):
        asyncio.run(off.embed(["x"]))
    assert llm.embedding_requests == []


def test_vectors_are_stored_once_and_searched_nearest_first(engine: Engine, room: Newsroom
                                                           ) -> None:
    source = make_source(engine)
    ingest(room, source, [draft("a", "Server farm opens"), draft("b", "Bitcoin falls"),
                          draft("c", "Data centre for AI")])
    with session_scope(engine) as session:
        waiting = embeddings.waiting(session=session, limit=10)
        assert sorted(text.split("\n")[0] for _, text, _ in waiting) == [
            "Bitcoin falls", "Data centre for AI", "Server farm opens"]
        assert not any(alert for _, _, alert in waiting)  # not queued by an ingest
        ids = {text.split("\n")[0]: story_id for story_id, text, _ in waiting}
        written = embeddings.save(session=session, model="m", vectors={
            ids[title]: np.asarray(vector(title, 32), np.float32) for title in ids})
        assert sorted(written) == sorted(ids.values())
        again = embeddings.save(session=session, model="m", vectors={
            ids["Bitcoin falls"]: np.zeros(32, np.float32)})
        assert again == []  # written once
        since = database_now(session) - timedelta(days=7)
    query = np.asarray(vector("AI data center", 32), np.float32)
    found = embeddings.nearest(engine, query, since, limit=2, model="m")
    assert [story_id for story_id, _ in found] == [ids["Data centre for AI"],
                                                   ids["Server farm opens"]]
    assert found[0][1] > found[1][1] > 0.3
    assert embeddings.nearest(engine, query, since, model="other") == []
    assert embeddings.nearest(engine, np.ones(8, np.float32), since) == []  # other size


def test_a_round_alerts_new_stories_by_meaning_and_counts_its_calls(
    engine: Engine, room: Newsroom, llm: LlmServer
) -> None:
    source = make_source(engine)
    ingest(room, source, [draft("old", "Hyperscale server farm for machine learning")])
    subscribe(engine, 501, '~"AI infrastructure in Europe"@0.50')
    subscribe(engine, 502, '~"AI infrastructure in Europe"@0.50 -Frankfurt')
    subscribe(engine, 503, '~"football"@0.50')
    room.embedding = True
    embedder, cache = _embedder(llm), SemanticCache()
    ingest(room, source, [draft("new", "Server farm for neural networks opens near Frankfurt"),
                          draft("off", "Bitcoin rallies as traders pile in")])
    llm.queue_embeddings(Reply(status=503))
    failed = asyncio.run(embed_round(engine, embedder, cache))
    assert failed.failed and failed.embedded == 0
    done = asyncio.run(embed_round(engine, embedder, cache))
    assert (done.embedded, done.matched) == (3, 1)  # the old story is embedded, not alerted
    with session_scope(engine) as session:
        rows = session.exec(select(Delivery)).all()
        assert [(row.chat_id, row.topics) for row in rows] == [
            (501, '["~\\"AI infrastructure in Europe\\"@0.50"]')]
        day = session.get(LlmUsage, usage.today(session))
        assert day is not None and day.failures == 1 and day.calls == 3  # fail, meanings, stories
        assert day.tokens_in > 0
        assert embeddings.waiting(session=session, limit=10) == []
    assert asyncio.run(embed_round(engine, embedder, cache)).embedded == 0


def test_past_the_token_budget_stories_wait(engine: Engine, room: Newsroom,
                                            llm: LlmServer) -> None:
    room.embedding = True
    ingest(room, make_source(engine), [draft("x", "Server farm opens")])
    with session_scope(engine) as session:
        usage.record_calls(session=session, calls=1, failures=0, tokens_in=100, tokens_out=0)
    assert asyncio.run(embed_round(engine, _embedder(llm), SemanticCache(),
                                   daily_token_budget=50)).embedded == 0
    assert llm.embedding_requests == []
    with session_scope(engine) as session:
        assert len(embeddings.waiting(session=session, limit=10)) == 1


@pytest.mark.parametrize(
    ("stored", "shown"),
    [
        ('~"data centers"@0.50', "~ data centers"),
        ('~"AI infrastructure in Europe"@0.45 -crypto', "~ AI infrastructure in Europe -crypto"),
        ('~"covid-19 vaccines"', "~ covid-19 vaccines"),
        ('~"AI -based tools"@0.40', '~ "AI -based tools"'),  # unquoted it would exclude `based`
        ('~"me@home"@0.40', '~ "me@home"'),  # unquoted `@` would start a threshold
        ("SoftBank -Hawks", "SoftBank -Hawks"),  # a keyword topic reads as it is stored
        ('(SoftBank OR 软银) "data center"', '(SoftBank OR 软银) "data center"'),
    ],
)
def test_a_semantic_topic_is_shown_as_its_meaning_not_its_stored_syntax(
    stored: str, shown: str
) -> None:
    assert topic_label(stored) == shown
    before, after = readable(stored), readable(shown)
    if before is not None:  # what readers see is a query for the same topic (/unsubscribe)
        assert after is not None
        assert (after.key, after.rest_text) == (before.key, before.rest_text)
