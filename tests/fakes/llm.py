"""Fake OpenAI-compatible chat-completions and embeddings server, so LLM calls run over real
HTTP in tests. Embeddings are a hashed bag of concepts (tests.fakes.concepts): deterministic,
and near each other for texts on one subject, in any of the languages its table knows."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from tests.fakes.concepts import vector

PATHS = ("/v1/chat/completions", "/chat/completions")
EMBEDDING_PATHS = ("/v1/embeddings", "/embeddings")
DEFAULT_DIMENSIONS = 256


@dataclass
class Reply:
    """One scripted answer; `body` sends raw bytes verbatim, `status` != 200 sends an error."""

    content: str | None = None
    status: int = 200
    body: bytes | None = None
    delay: float = 0.0
    finish_reason: str = "stop"
    refusal: str | None = None
    dimensions: int | None = None  # embeddings: vectors of this size whatever was asked


Responder = Callable[[dict[str, Any]], Reply | str]

# The keywords OpenAI's strict mode accepts; others (minLength, default, …) fail the request.
STRICT_KEYWORDS = {
    "type", "properties", "required", "additionalProperties", "items", "enum", "const", "anyOf",
    "$ref", "$defs", "description", "title", "pattern", "format", "minimum", "maximum",
    "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minItems", "maxItems",
}


def strict_schema_error(schema: Any, where: str = "()") -> str | None:
    """Why OpenAI would refuse this schema under `strict: true`, or None if it would take it."""
    if isinstance(schema, list):
        return next((error for n, item in enumerate(schema)
                     if (error := strict_schema_error(item, f"{where}, {n}"))), None)
    if not isinstance(schema, dict):
        return None
    for key in schema:
        if key not in STRICT_KEYWORDS:
            return f"In context={where}, '{key}' is not permitted."
    if schema.get("type") == "object":
        if schema.get("additionalProperties") is not False:
            return (f"In context={where}, 'additionalProperties' is required to be supplied "
                    "and to be false.")
        missing = [name for name in schema.get("properties", {})
                   if name not in (schema.get("required") or [])]
        if missing:
            return (f"In context={where}, 'required' is required to be supplied and to be an "
                    f"array including every key in properties. Missing '{missing[0]}'.")
    for key in ("items", "anyOf"):
        if key in schema and (error := strict_schema_error(schema[key], f"{where}, '{key}'")):
            return error
    for name, value in (schema.get("properties") or {}).items():
        if error := strict_schema_error(value, f"{where}, 'properties', '{name}'"):
            return error
    for name, value in (schema.get("$defs") or {}).items():
        if error := strict_schema_error(value, f"{where}, '$defs', '{name}'"):
            return error
    return None


def _tokens(text: str) -> int:
    """Rough token count (~4 chars per token) so usage numbers look plausible."""
    return max(1, len(text) // 4)


def error_body(status: int, message: str, param: str | None = None) -> bytes:
    """OpenAI-style error JSON, so the real client raises the matching exception class."""
    kind = "server_error" if status >= 500 else "invalid_request_error"
    code = {401: "invalid_api_key", 429: "rate_limit_exceeded"}.get(status)
    err = {"message": message, "type": kind, "param": param, "code": code}
    return json.dumps({"error": err}).encode()


def completion(request: dict[str, Any], reply: Reply) -> dict[str, Any]:
    """Build a realistic chat.completion object echoing the requested model."""
    prompt = "".join(str(m.get("content") or "") for m in request.get("messages") or [])
    out = reply.content or reply.refusal or ""
    usage = {"prompt_tokens": _tokens(prompt), "completion_tokens": _tokens(out)}
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    message = {"role": "assistant", "content": reply.content, "refusal": reply.refusal}
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.get("model", "fake-model"),
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": reply.finish_reason}
        ],
        "usage": usage,
        "system_fingerprint": "fp_fake",
    }


class _Handler(BaseHTTPRequestHandler):
    """Serves one request per connection so stop() never waits on idle keep-alive sockets."""

    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def _send(self, status: int, body: bytes) -> None:
        """Write a JSON response, ignoring clients that already gave up (timeouts)."""
        self.close_connection = True
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("x-request-id", f"req_{uuid.uuid4().hex[:16]}")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass

    def do_POST(self) -> None:
        """Validate like the real API, record the body, then answer from the script."""
        fake = self.server.fake
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.split("?")[0].rstrip("/") in EMBEDDING_PATHS:
            return self._embeddings(raw)
        if self.path.split("?")[0].rstrip("/") not in PATHS:
            return self._send(404, error_body(404, f"Unknown path {self.path}"))
        try:
            request = json.loads(raw)
        except ValueError:
            return self._send(400, error_body(400, "Request body is not valid JSON"))
        fake._record(request)
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            return self._send(401, error_body(401, "Missing bearer token"))
        if request.get("stream"):
            return self._send(400, error_body(400, "stream is not supported by the fake", "stream"))
        fmt = (request.get("response_format") or {}).get("type")
        if fmt == "json_schema" and not fake.supports_json_schema:
            msg = "response_format json_schema is not supported"
            return self._send(400, error_body(400, msg, "response_format"))
        if fmt == "json_schema" and request["response_format"]["json_schema"].get("strict"):
            json_schema = request["response_format"]["json_schema"]
            if error := strict_schema_error(json_schema.get("schema")):
                msg = f"Invalid schema for response_format '{json_schema.get('name')}': {error}"
                return self._send(400, error_body(400, msg, "response_format"))
        try:
            reply = fake._next_reply(request)
        except Exception as exc:  # surface responder bugs as a 500 instead of a dropped socket
            return self._send(500, error_body(500, f"responder raised {exc!r}"))
        if reply.delay:
            fake._stopping.wait(reply.delay)
        if reply.body is not None:
            self._send(reply.status, reply.body)
        elif reply.status != 200:
            message = reply.content or f"Fake error {reply.status}"
            self._send(reply.status, error_body(reply.status, message))
        else:
            self._send(200, json.dumps(completion(request, reply)).encode())


    def _embeddings(self, raw: bytes) -> None:
        """`/v1/embeddings`: concept vectors, or the next scripted embedding failure."""
        fake = self.server.fake
        try:
            request = json.loads(raw)
        except ValueError:
            return self._send(400, error_body(400, "Request body is not valid JSON"))
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            return self._send(401, error_body(401, "Missing bearer token"))
        texts = request.get("input")
        texts = [texts] if isinstance(texts, str) else texts
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            return self._send(400, error_body(400, "input must be a string or strings", "input"))
        fake._record_embedding(request)
        with fake._lock:
            reply = fake._embedding_queue.popleft() if fake._embedding_queue else Reply()
        if reply.delay:
            fake._stopping.wait(reply.delay)
        if reply.body is not None:
            return self._send(reply.status, reply.body)
        if reply.status != 200:
            return self._send(reply.status, error_body(reply.status, reply.content
                                                       or f"Fake error {reply.status}"))
        dims = reply.dimensions or int(request.get("dimensions") or DEFAULT_DIMENSIONS)
        data = [{"object": "embedding", "index": n, "embedding": vector(text, dims)}
                for n, text in enumerate(texts)]
        tokens = sum(_tokens(text) for text in texts)
        body = {"object": "list", "data": data, "model": request.get("model", "fake-embed"),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
        self._send(200, json.dumps(body).encode())


class _HTTPServer(ThreadingHTTPServer):
    """Joins handler threads on close so no socket outlives the test."""

    daemon_threads = False
    block_on_close = True
    fake: LlmServer


class LlmServer:
    """Threaded fake of the chat-completions endpoint with scripted or computed replies."""

    def __init__(self, *, supports_json_schema: bool = True) -> None:
        self.supports_json_schema = supports_json_schema
        self.responder: Responder = lambda request: "{}"
        self.requests: list[dict[str, Any]] = []
        self.embedding_requests: list[dict[str, Any]] = []
        self._embedding_queue: deque[Reply] = deque()
        self._queue: deque[Reply | str] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """What the app gets as OPENAI_BASE_URL."""
        if self._httpd is None:
            raise RuntimeError("LlmServer is not started")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    @property
    def calls(self) -> int:
        """Requests received with a JSON body, rejected ones (401/400) included."""
        with self._lock:
            return len(self.requests)

    def queue(self, *replies: Reply | str) -> None:
        """Script the next replies, used in order before falling back to the responder."""
        with self._lock:
            self._queue.extend(replies)

    def queue_embeddings(self, *replies: Reply) -> None:
        """Script the next embedding answers (failures: status, body, delay, dimensions);
        past them every request gets the concept vectors."""
        with self._lock:
            self._embedding_queue.extend(replies)

    def _record_embedding(self, request: dict[str, Any]) -> None:
        with self._lock:
            self.embedding_requests.append(request)

    @property
    def embedded_texts(self) -> list[str]:
        """Every text embedding requests carried, in order."""
        with self._lock:
            requests = list(self.embedding_requests)
        return [text for request in requests for text in
                ([request["input"]] if isinstance(request["input"], str) else request["input"])]

    def _record(self, request: dict[str, Any]) -> None:
        """Remember a request body (thread-safe)."""
        with self._lock:
            self.requests.append(request)

    def _next_reply(self, request: dict[str, Any]) -> Reply:
        """Pop a scripted reply or ask the responder, normalising str to Reply."""
        with self._lock:
            scripted = self._queue.popleft() if self._queue else None
        reply = scripted if scripted is not None else self.responder(request)
        return Reply(content=reply) if isinstance(reply, str) else reply

    def start(self) -> LlmServer:
        """Bind to a free port on 127.0.0.1 and serve in a background thread."""
        if self._httpd is not None:
            return self
        self._stopping.clear()
        self._httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.fake = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Cut pending delays short, stop serving and close every socket."""
        if self._httpd is None:
            return
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join()
        self._httpd = self._thread = None

    def __enter__(self) -> LlmServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# --- /ask prompts (news.ask): a question, then numbered stories fenced as articles ----------

_ASK_STORY = re.compile(r"<<<ARTICLE\n\[(\d+)\] ([^\n]*)")


def is_ask(request: dict[str, Any]) -> bool:
    """Whether the request is an /ask prompt rather than a brief or an alias suggestion."""
    messages = request.get("messages") or []
    return len(messages) > 1 and str(messages[1].get("content") or "").startswith("<<<QUESTION")


def ask_stories(request: dict[str, Any]) -> dict[int, str]:
    """The numbered stories an /ask prompt gives the model: number -> headline."""
    content = str((request.get("messages") or [{}, {}])[1].get("content") or "")
    return {int(number): headline for number, headline in _ASK_STORY.findall(content)}


def ask_question(request: dict[str, Any]) -> str:
    """The question, as fenced in the prompt."""
    content = str(request["messages"][1]["content"])
    return content.split("\n", 1)[1].split("\nQUESTION>>>", 1)[0]


def answer(text: str, *, answered: bool = True) -> str:
    """The JSON an /ask prompt asks for."""
    return json.dumps({"answered": answered, "answer": text}, ensure_ascii=False)


def cited_answer(request: dict[str, Any]) -> str:
    """A faithful model: one sentence per story given, each citing that story's number."""
    stories = ask_stories(request)
    return answer(" ".join(f"{headline} [{number}]." for number, headline in stories.items()))


def uncited_answer(request: dict[str, Any]) -> str:
    """A careless model: the stories' facts with no citation at all."""
    return answer(" ".join(f"{headline}." for headline in ask_stories(request).values()))


def unanswered(request: dict[str, Any]) -> str:
    """An honest model whose stories do not answer the question."""
    return answer("", answered=False)


# --- the weekly brief (news.weekly) ----------------------------------------------------------

WEEKLY_MARK = "weekly news brief"  # in the system prompt of a weekly storyline request
_WEEKLY_TEXT = {  # (storyline, later stories, who, watch) per language the tests read
    "English": ("{topic} had a busy week: the first report set the tone {first}.",
                " Later stories followed it up {rest}.", "at the centre of the week's news",
                "Watch for the next official statement and the figures it gives."),
    "French": ("La semaine de {topic} a été chargée, et le premier article a donné le ton "
               "{first}.", " Les articles suivants ont confirmé la tendance {rest}.",
               "au centre de l'actualité de la semaine",
               "Il faudra surveiller la prochaine annonce officielle et ses chiffres."),
    "Chinese": ("本周{topic}动态频繁，首篇报道定下了基调{first}。", "随后的报道进一步跟进{rest}。",
                "本周新闻的焦点", "关注下一次官方声明及其公布的数据。"),
}


def is_weekly(request: dict[str, Any]) -> bool:
    messages = request.get("messages") or [{}]
    return WEEKLY_MARK in str(messages[0].get("content") or "")


def weekly_answer(request: dict[str, Any]) -> str | None:
    """A storyline in the language the prompt asks for, citing every story it was given by
    number; None for any other request, so a test's responder falls through to its briefs."""
    if not is_weekly(request):
        return None
    system, user = (str(m.get("content") or "") for m in request["messages"][:2])
    language = next((name for name in _WEEKLY_TEXT if f"in {name}." in system), "English")
    topic_match = re.search(r"<<<TOPIC\n(.*?)\nTOPIC>>>", user, re.DOTALL)
    topic = topic_match[1] if topic_match else "?"
    numbers = [int(n) for n in re.findall(r"^\[(\d+)\] ", user, re.MULTILINE)] or [1]
    opening, later, role, watch = _WEEKLY_TEXT[language]
    storyline = opening.format(topic=topic, first=f"[{numbers[0]}]")
    if len(numbers) > 1:
        storyline += later.format(rest="".join(f"[{n}]" for n in numbers[1:]))
    return json.dumps({"storyline": storyline, "players": [{"name": topic, "role": role}],
                       "watch": watch}, ensure_ascii=False)
