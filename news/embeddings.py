"""Texts -> vectors through an OpenAI-compatible `/v1/embeddings` endpoint (EMBEDDING_MODEL).

One request embeds a batch of texts; a failure (an error, a timeout, vectors of the wrong
size) raises EmbeddingError with what it cost, and the caller leaves those texts for later.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import numpy as np
import openai

from news.semantic import Vector, normalized

log = logging.getLogger(__name__)
MAX_INPUT_CHARS = 2000  # a headline and its lead: what the story is about, at a bounded cost
BATCH = 64  # texts per request


@dataclass(frozen=True)
class Embedded:
    """Vectors (one normalized row per text) and what the calls cost."""

    vectors: Vector
    calls: int = 1
    failures: int = 0
    tokens: int = 0


class EmbeddingError(Exception):
    def __init__(self, reason: str, calls: int = 1, tokens: int = 0) -> None:
        super().__init__(reason)
        self.calls, self.tokens = calls, tokens


class Embedder:
    """The endpoint, its model and the dimensions asked for (0: the model's own)."""

    def __init__(self, client: openai.AsyncOpenAI | None, model: str, dimensions: int = 0,
                 timeout: float = 30.0) -> None:
        self.client = client if model else None
        self.model = model
        self.dimensions = dimensions
        self.timeout = timeout

    @property
    def online(self) -> bool:
        return self.client is not None

    async def embed(self, texts: list[str]) -> Embedded:
        """All the texts, BATCH per request, or EmbeddingError."""
        if self.client is None:
            raise EmbeddingError("off", calls=0)
        parts: list[Vector] = []
        calls = tokens = 0
        for start in range(0, len(texts), BATCH):
            try:
                done = await self._one(texts[start:start + BATCH])
            except EmbeddingError as exc:
                raise EmbeddingError(str(exc), calls + exc.calls, tokens + exc.tokens) from exc
            parts.append(done.vectors)
            calls += done.calls
            tokens += done.tokens
        vectors = np.vstack(parts) if parts else np.zeros((0, self.dimensions), np.float32)
        return Embedded(vectors, calls, 0, tokens)

    async def _one(self, texts: list[str]) -> Embedded:
        assert self.client is not None
        inputs = [" ".join(text.split())[:MAX_INPUT_CHARS] or "-" for text in texts]
        try:
            async with asyncio.timeout(self.timeout):
                response = await self.client.embeddings.create(
                    model=self.model, input=inputs, encoding_format="float",
                    dimensions=self.dimensions or openai.omit)
        except (openai.OpenAIError, TimeoutError, ValueError) as exc:
            log.info("embedding %d texts failed: %s", len(texts), type(exc).__name__)
            raise EmbeddingError(type(exc).__name__) from exc
        tokens = response.usage.total_tokens if response.usage is not None else 0
        rows = sorted(response.data, key=lambda row: row.index)
        if len(rows) != len(inputs):
            raise EmbeddingError("count", tokens=tokens)
        sizes = {len(row.embedding) for row in rows}
        if len(sizes) != 1 or (self.dimensions and sizes != {self.dimensions}):
            raise EmbeddingError("dimensions", tokens=tokens)
        vectors = normalized([row.embedding for row in rows])
        if not np.isfinite(vectors).all():
            raise EmbeddingError("values", tokens=tokens)
        return Embedded(vectors, 1, 0, tokens)
