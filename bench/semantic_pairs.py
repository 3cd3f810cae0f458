"""Keyword-only against semantic matching on a labelled table of (story, topic) pairs.

tests/fixtures/semantic_pairs.csv holds 220 pairs in seven languages (en, de, fr, es, ru, zh,
ja), each labelled 1 when the story is about the topic: a story is paired with the topic it is
about and three others, and a story about none with the topic it nearly is (a chatbot in
California for "AI infrastructure in Europe"). Keyword-only reads the topic as a query of the
topic language (every word must occur, news.topics); semantic embeds stories and topics and
matches at or above a threshold (news.semantic), as the bot does. Keyword-only is read two
ways: every word of the topic (how `/subscribe AI infrastructure in Europe` reads it), and any
of its words of four letters or more OR-ed (the loosest query a reader could write from it).

On the emulator the figures only show that the pipeline works: its concept table
(tests/fakes/concepts.py) was written alongside these stories. A real model's figures are the
ones that tell whether semantic topics are worth their calls.

Run against any OpenAI-compatible embeddings endpoint:

    SEMANTIC_BENCH_BASE_URL=https://api.openai.com/v1 SEMANTIC_BENCH_API_KEY=sk-… \\
    SEMANTIC_BENCH_MODEL=text-embedding-3-small SEMANTIC_BENCH_DIMENSIONS=256 \\
        .venv/bin/python bench/semantic_pairs.py

(a local server works the same: `SEMANTIC_BENCH_BASE_URL=http://localhost:11434/v1
SEMANTIC_BENCH_MODEL=nomic-embed-text SEMANTIC_BENCH_DIMENSIONS=0` for Ollama). Without
SEMANTIC_BENCH_BASE_URL it runs on the LLM emulator's concept vectors (tests.fakes.llm), as CI
does (tests/test_semantic_pairs.py). Prints precision and recall of both at each threshold,
and the threshold with the best F1.
"""

from __future__ import annotations

import asyncio
import csv
import os
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import openai  # noqa: E402

from news.embeddings import Embedder  # noqa: E402
from news.semantic import Vector  # noqa: E402
from news.topics import matches, parse  # noqa: E402

TABLE = ROOT / "tests" / "fixtures" / "semantic_pairs.csv"
THRESHOLDS = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7)


@dataclass(frozen=True)
class Pair:
    language: str
    story: str
    topic: str
    relevant: bool


@dataclass(frozen=True)
class Scores:
    true_positives: int
    false_positives: int
    false_negatives: int

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        wanted = self.true_positives + self.false_negatives
        return self.true_positives / wanted if wanted else 1.0

    @property
    def f1(self) -> float:
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0


def read_pairs(path: Path = TABLE) -> list[Pair]:
    with path.open(encoding="utf-8", newline="") as handle:
        return [Pair(row["language"], row["story"], row["topic"], row["relevant"] == "1")
                for row in csv.DictReader(handle)]


def scored(pairs: list[Pair], decisions: list[bool]) -> Scores:
    tp = sum(1 for pair, said in zip(pairs, decisions, strict=True) if said and pair.relevant)
    fp = sum(1 for pair, said in zip(pairs, decisions, strict=True) if said and not pair.relevant)
    fn = sum(1 for pair, said in zip(pairs, decisions, strict=True) if not said and pair.relevant)
    return Scores(tp, fp, fn)


def keyword(pairs: list[Pair]) -> Scores:
    """The topic as a keyword query: every word of it in the story."""
    return scored(pairs, [matches(parse(pair.topic), pair.story) for pair in pairs])


def any_word(pairs: list[Pair]) -> Scores:
    """The topic's words of four letters or more OR-ed: the loosest keyword query."""
    def query(topic: str) -> str:
        return " OR ".join(word for word in topic.split() if len(word) >= 4) or topic
    return scored(pairs, [matches(parse(query(pair.topic)), pair.story) for pair in pairs])


def similarities(pairs: list[Pair], vectors: dict[str, Vector]) -> list[float]:
    return [float(vectors[pair.story] @ vectors[pair.topic]) for pair in pairs]


def semantic(pairs: list[Pair], scores: list[float], threshold: float) -> Scores:
    return scored(pairs, [score >= threshold for score in scores])


async def embed_all(pairs: list[Pair], embedder: Embedder) -> dict[str, Vector]:
    texts = sorted({pair.story for pair in pairs} | {pair.topic for pair in pairs})
    done = await embedder.embed(texts)
    return dict(zip(texts, done.vectors, strict=True))


def report(pairs: list[Pair], vectors: dict[str, Vector], label: str) -> dict[str, object]:
    """Prints the table; returns the figures (tests read them)."""
    words, loose = keyword(pairs), any_word(pairs)
    scores = similarities(pairs, vectors)
    rows = {threshold: semantic(pairs, scores, threshold) for threshold in THRESHOLDS}
    best = max(rows, key=lambda threshold: (rows[threshold].f1, -threshold))
    languages = sorted({pair.language for pair in pairs})
    print(f"{len(pairs)} pairs ({sum(p.relevant for p in pairs)} relevant) in "
          f"{len(languages)} languages ({', '.join(languages)}); embeddings: {label}")
    print(f"{'matching':<22} {'precision':>9} {'recall':>7} {'F1':>6}")
    for name, found in (("keyword, all words", words), ("keyword, any word", loose)):
        print(f"{name:<22} {found.precision:>9.2f} {found.recall:>7.2f} {found.f1:>6.2f}")
    for threshold, found in rows.items():
        mark = "  <- best F1" if threshold == best else ""
        print(f"{f'semantic >= {threshold:.2f}':<22} {found.precision:>9.2f} "
              f"{found.recall:>7.2f} {found.f1:>6.2f}{mark}")
    return {"keyword": words, "any_word": loose, "semantic": rows, "best": best}


def main() -> None:
    pairs = read_pairs()
    base_url = os.environ.get("SEMANTIC_BENCH_BASE_URL", "")
    if base_url:
        client = openai.AsyncOpenAI(api_key=os.environ.get("SEMANTIC_BENCH_API_KEY", "none"),
                                    base_url=base_url, max_retries=2)
        model = os.environ.get("SEMANTIC_BENCH_MODEL", "text-embedding-3-small")
        dims = int(os.environ.get("SEMANTIC_BENCH_DIMENSIONS", "256"))
        vectors = asyncio.run(embed_all(pairs, Embedder(client, model, dims, timeout=120)))
        report(pairs, vectors, f"{model} at {base_url}")
        return
    from tests.fakes.llm import LlmServer

    with LlmServer() as llm:
        client = openai.AsyncOpenAI(api_key="emulator", base_url=llm.base_url, max_retries=0)
        vectors = asyncio.run(embed_all(pairs, Embedder(client, "emulator", 256)))
    report(pairs, vectors, "the LLM emulator's concept vectors")


if __name__ == "__main__":
    main()
