"""Checks the fake LLM server against the real openai client, so app tests can trust it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.fakes.llm import LlmServer, Reply

SCHEMA: dict[str, Any] = {
    "name": "brief",
    "strict": True,
    "schema": {
        "type": "object",
        "properties": {"headline": {"type": "string"}},
        "required": ["headline"],
        "additionalProperties": False,
    },
}
JSON_SCHEMA: Any = {"type": "json_schema", "json_schema": SCHEMA}
MESSAGES: list[Any] = [{"role": "user", "content": "Summarise the news in one headline."}]


@pytest.fixture
def server() -> Iterator[LlmServer]:
    """A fresh fake per test so recorded requests never leak between tests."""
    with LlmServer() as srv:
        yield srv


def _client(server: LlmServer, **kwargs: Any) -> openai.AsyncOpenAI:
    """The real client, without retries so errors surface on the first call."""
    return openai.AsyncOpenAI(base_url=server.base_url, api_key="test", max_retries=0, **kwargs)


@pytest.mark.asyncio
async def test_json_schema_round_trip(server: LlmServer) -> None:
    server.responder = lambda req: json.dumps({"headline": f"for {req['model']}"})
    async with _client(server) as client:
        resp = await client.chat.completions.create(
            model="gpt-test",
            messages=MESSAGES,
            response_format=JSON_SCHEMA,
        )
    assert json.loads(resp.choices[0].message.content or "") == {"headline": "for gpt-test"}
    assert resp.object == "chat.completion" and resp.model == "gpt-test"
    assert resp.choices[0].finish_reason == "stop" and resp.choices[0].message.refusal is None
    assert resp.usage is not None and resp.usage.prompt_tokens == len(MESSAGES[0]["content"]) // 4
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens
    assert server.calls == 1
    assert server.requests[0]["response_format"]["json_schema"]["name"] == "brief"


@pytest.mark.asyncio
async def test_queue_then_responder_default(server: LlmServer) -> None:
    server.queue("first", Reply(refusal="no", content=None, finish_reason="length"))
    async with _client(server) as client:
        contents = []
        for _ in range(3):
            resp = await client.chat.completions.create(model="m", messages=MESSAGES)
            contents.append((resp.choices[0].message.content, resp.choices[0].message.refusal))
        assert resp.choices[0].finish_reason == "stop"
    assert contents == [("first", None), (None, "no"), ("{}", None)]
    assert server.calls == 3


@pytest.mark.asyncio
async def test_server_error_maps_to_internal_server_error(server: LlmServer) -> None:
    server.queue(Reply(status=500, content="boom"))
    async with _client(server) as client:
        with pytest.raises(openai.InternalServerError) as info:
            await client.chat.completions.create(model="m", messages=MESSAGES)
    assert info.value.status_code == 500
    assert isinstance(info.value.body, dict) and info.value.body["message"] == "boom"


@pytest.mark.asyncio
async def test_raw_body_override_is_sent_verbatim(server: LlmServer) -> None:
    server.queue(Reply(status=502, body=b"<html>bad gateway</html>"))
    async with _client(server) as client:
        with pytest.raises(openai.APIStatusError) as info:
            await client.chat.completions.create(model="m", messages=MESSAGES)
    assert info.value.status_code == 502
    assert info.value.response.text == "<html>bad gateway</html>"


@pytest.mark.asyncio
async def test_delay_triggers_client_timeout(server: LlmServer) -> None:
    server.queue(Reply(content="late", delay=2.0))
    async with _client(server, timeout=0.2) as client:
        with pytest.raises(openai.APITimeoutError):
            await client.chat.completions.create(model="m", messages=MESSAGES)


@pytest.mark.asyncio
async def test_unsupported_json_schema_is_bad_request() -> None:
    with LlmServer(supports_json_schema=False) as server:
        async with _client(server) as client:
            with pytest.raises(openai.BadRequestError) as info:
                await client.chat.completions.create(
                    model="m",
                    messages=MESSAGES,
                    response_format=JSON_SCHEMA,
                )
            ok = await client.chat.completions.create(
                model="m", messages=MESSAGES, response_format={"type": "json_object"}
            )
    assert info.value.param == "response_format" and info.value.code is None
    assert "json_schema is not supported" in info.value.message
    assert ok.choices[0].message.content == "{}"


def test_missing_bearer_is_401(server: LlmServer) -> None:
    with httpx.Client() as http:
        resp = http.post(f"{server.base_url}/chat/completions", json={"model": "m", "messages": []})
    assert resp.status_code == 401
    assert resp.json()["error"]["type"] == "invalid_request_error"


def test_also_serves_unversioned_path_and_stop_is_idempotent() -> None:
    server = LlmServer().start()
    url = server.base_url.removesuffix("/v1") + "/chat/completions"
    with httpx.Client(headers={"Authorization": "Bearer t"}) as http:
        resp = http.post(url, json={"model": "m", "messages": [{"role": "user", "content": "x"}]})
    server.stop()
    server.stop()
    assert resp.status_code == 200 and resp.json()["usage"]["completion_tokens"] == 1
    with pytest.raises(RuntimeError):
        _ = server.base_url


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("schema", "complaint"),
    [
        ({"type": "object", "properties": {"h": {"type": "string", "minLength": 1}},
          "required": ["h"], "additionalProperties": False}, "'minLength' is not permitted"),
        ({"type": "object", "properties": {"h": {"type": "string"}}, "required": ["h"]},
         "'additionalProperties' is required"),
        ({"type": "object", "properties": {"h": {"type": "string"}, "r": {"type": "string"}},
          "required": ["h"], "additionalProperties": False}, "Missing 'r'"),
        ({"type": "object", "properties": {"p": {"type": "array", "items": {
            "type": "object", "properties": {"n": {"type": "string", "default": ""}},
            "required": ["n"], "additionalProperties": False}}},
          "required": ["p"], "additionalProperties": False}, "'default' is not permitted"),
    ],
)
async def test_strict_schema_is_checked_like_openai(
    server: LlmServer, schema: dict[str, Any], complaint: str
) -> None:
    """A schema strict mode would refuse is refused here too, so the app's own cannot drift."""
    response_format: Any = {"type": "json_schema",
                            "json_schema": {"name": "brief", "strict": True, "schema": schema}}
    async with _client(server) as client:
        with pytest.raises(openai.BadRequestError) as info:
            await client.chat.completions.create(
                model="m", messages=MESSAGES, response_format=response_format)
    assert complaint in str(info.value) and "response_format" in str(info.value)
    lax: Any = {"type": "json_schema", "json_schema": {"name": "brief", "schema": schema}}
    async with _client(server) as client:
        await client.chat.completions.create(model="m", messages=MESSAGES, response_format=lax)
