"""Alias suggestions report what they cost, so usage and the daily budget can count them."""

from __future__ import annotations

import asyncio
import json

import openai

from news.aliases import AliasFinder, Offer
from tests.fakes.llm import LlmServer, Reply


def ask(llm: LlmServer, timeout: float = 20.0) -> Offer:
    async def run() -> Offer:
        client = openai.AsyncOpenAI(api_key="k", base_url=llm.base_url, max_retries=0)
        try:
            return await AliasFinder(client, "m", timeout=timeout).suggest("SoftBank",
                                                                           ["SoftBank"])
        finally:
            await client.close()
    return asyncio.run(run())


def test_a_call_reports_its_tokens() -> None:
    with LlmServer() as llm:
        llm.queue(json.dumps({"aliases": ["软银", "SoftBank"], "exclusions": ["Hawks"]}))
        offer = ask(llm)
    assert offer.suggestions.aliases == ["软银"] and offer.suggestions.exclusions == ["Hawks"]
    assert (offer.calls, offer.failures) == (1, 0)
    assert offer.tokens_in > 50 and offer.tokens_out > 0


def test_failures_count_as_calls_with_what_they_spent() -> None:
    with LlmServer() as llm:
        llm.queue("not json", Reply(status=500), Reply("{}", delay=5))
        unreadable, refused, slow = ask(llm), ask(llm), ask(llm, timeout=0.5)
    assert (unreadable.calls, unreadable.failures) == (1, 1) and unreadable.tokens_in > 0
    assert (refused.calls, refused.failures, refused.tokens_in) == (1, 1, 0)
    assert (slow.calls, slow.failures) == (1, 1)
    assert not unreadable.suggestions.aliases


def test_without_a_model_nothing_is_asked_or_spent() -> None:
    finder = AliasFinder(None, "m")
    offer = asyncio.run(finder.suggest("SoftBank", ["SoftBank"]))
    assert not finder.online and offer.calls == 0 and not offer.suggestions.aliases
