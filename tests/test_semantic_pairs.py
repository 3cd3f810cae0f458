"""The labelled (story, topic) table, scored on the LLM emulator as CI runs it; with a real
endpoint the same script prints a real model's figures (bench/semantic_pairs.py)."""

from __future__ import annotations

import asyncio

import openai

from bench.semantic_pairs import Pair, embed_all, read_pairs, report, scored
from news.embeddings import Embedder
from tests.fakes.llm import LlmServer


def test_the_table_is_large_labelled_and_in_several_languages() -> None:
    pairs = read_pairs()
    assert len(pairs) >= 200
    assert len({pair.language for pair in pairs}) >= 5
    assert 0 < sum(pair.relevant for pair in pairs) < len(pairs)
    assert len({(pair.story, pair.topic) for pair in pairs}) == len(pairs)


def test_precision_and_recall_count_what_they_should() -> None:
    pairs = [Pair("en", "s", "t", True), Pair("en", "s", "u", False),
             Pair("en", "r", "t", True), Pair("en", "r", "u", False)]
    found = scored(pairs, [True, True, False, False])
    assert (found.true_positives, found.false_positives, found.false_negatives) == (1, 1, 1)
    assert found.precision == 0.5 and found.recall == 0.5


def test_on_the_emulator_meaning_finds_what_keywords_miss(capsys: object) -> None:
    pairs = read_pairs()
    with LlmServer() as llm:
        client = openai.AsyncOpenAI(api_key="k", base_url=llm.base_url, max_retries=0)
        vectors = asyncio.run(embed_all(pairs, Embedder(client, "emulator", 256)))
        texts = {pair.story for pair in pairs} | {pair.topic for pair in pairs}
        assert len(llm.embedding_requests) == -(-len(texts) // 64)  # 64 texts a request
    figures = report(pairs, vectors, "emulator")
    words, best = figures["keyword"], figures["semantic"][figures["best"]]  # type: ignore[index]
    assert best.recall > words.recall + 0.5
    assert best.precision > 0.7
