"""Fake Telegram Bot API server over real HTTP, so the bot runs unmodified against it in tests.

Every call is validated against the committed Bot API table (tools/bot_api_table.py) and HTML
texts against Telegram's entity parser, so a call the real server would refuse fails here too;
`rejected` collects those for a blanket `assert emulator.rejected == []`. Opt-in sending limits
(`enforce_limits`), latency, faults (one-off, random, or an outage until `recover()`), slow
answers, hang-ups and blocked chats let tests prove the bot paces itself and survives what the
real server does to it.
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import email.parser
import email.policy
import functools
import json
import math
import random
import re
import socket
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.error import HTTPError
from urllib.parse import parse_qsl, unquote, urlsplit
from urllib.request import ProxyHandler, Request, build_opener

from tests.fakes.telegram_html import TelegramHtmlError, parse_html_entities, utf16_len

JSONDict = dict[str, Any]
TABLE_PATH = Path(__file__).with_name("bot_api_table.json")
TEXT_LIMIT, CAPTION_LIMIT, CALLBACK_DATA_LIMIT = 4096, 1024, 64
DOWNLOAD_LIMIT = 20 * 1024 * 1024  # getFile refuses bigger files
COMMAND = re.compile(r"/[A-Za-z0-9_]{1,32}(@[A-Za-z0-9_]{3,32})?(?=\s|$)")
NOT_FOUND: JSONDict = {"ok": False, "error_code": 404, "description": "Not Found"}
ANONYMOUS_ADMIN = {"id": 1087968824, "is_bot": True, "first_name": "Group"}
OPT_IN_UPDATES = {"chat_member", "message_reaction", "message_reaction_count"}  # need asking
# Split word lists (SIM905 is off project-wide): as list literals they would span 50 lines.
CHAT_ACTIONS = (
    "typing upload_photo record_video upload_video record_voice upload_voice upload_document "
    "choose_sticker find_location record_video_note upload_video_note"
).split()
BUTTON_ACTIONS = (
    "url callback_data switch_inline_query switch_inline_query_current_chat login_url web_app "
    "pay callback_game copy_text switch_inline_query_chosen_chat"
).split()
ADMIN_RIGHTS = (
    "can_manage_chat can_delete_messages can_manage_video_chats can_restrict_members "
    "can_promote_members can_change_info can_invite_users can_post_stories can_edit_stories "
    "can_delete_stories"
).split()
RESTRICTIONS = (
    "can_send_messages can_send_audios can_send_documents can_send_photos can_send_videos "
    "can_send_video_notes can_send_voice_notes can_send_polls can_send_other_messages "
    "can_add_web_page_previews can_react_to_messages can_edit_tag can_change_info "
    "can_invite_users can_pin_messages can_manage_topics"
).split()
GIFT_TYPES = "unlimited_gifts limited_gifts unique_gifts premium_subscription gifts_from_channels"
NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly the "
    "same as a current content and reply markup of the message"
)
MALFORMED = "garbage"  # malformed_next's result: a string where an object (Message) is due
BAD_QUERY = "query is too old and response timeout expired or query ID is invalid"
LATENCY_METHODS = {"sendMessage", "editMessageText"}  # the calls `latency` slows down
RELAYS = {"copyMessage", "copyMessages", "forwardMessage", "forwardMessages"}  # sends too
POLL_CONFLICT = (
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance "
    "is running"
)


@functools.cache
def load_table() -> JSONDict:
    """The committed, compact Bot API table; cached since it never changes within a run."""
    table: JSONDict = json.loads(TABLE_PATH.read_text(encoding="utf-8"))
    return table


@functools.cache
def _method_names() -> dict[str, str]:
    """Bot API method names are case-insensitive; map lowercase -> canonical."""
    return {name.lower(): name for name in load_table()["methods"]}


class ApiError(Exception):
    """A Bot API error response; `parameters` carries retry_after / migrate_to_chat_id.

    `blame` False: not the bot's mistake (injected fault, limit, block), so not in `rejected`.
    """

    def __init__(
        self, status: int, description: str, parameters: JSONDict | None = None,
        blame: bool = True,
    ) -> None:  # fmt: skip
        super().__init__(description)
        self.status, self.description, self.parameters = status, description, parameters
        self.blame = blame


def bad_request(reason: str) -> ApiError:
    return ApiError(400, f"Bad Request: {reason}")


@dataclass
class UploadedFile:
    """A multipart file part; stands in for an InputFile value in the params dict."""

    filename: str
    content_type: str
    data: bytes


@dataclass
class SentMessage:
    """What the bot sent to a chat, as a test wants to assert on it (a snapshot copy)."""

    message_id: int
    chat_id: int
    text: str  # plain text (the caption for media) after entity parsing
    html: str  # raw text as sent
    parse_mode: str | None
    reply_markup: JSONDict | None
    message_thread_id: int | None
    edits: int = 0
    method: str = "sendMessage"
    deleted: bool = False
    document: bytes | None = None  # sendDocument: the file's bytes (uploaded or reused by id)
    file_name: str | None = None


@dataclass(frozen=True)
class Limits:
    """Telegram's documented sending limits, as sliding windows over accepted sends.

    `slack` shortens every window so that timing jitter between the bot's clock and the
    server's arrival times does not turn a correctly paced send into a 429.

    A send with `allow_paid_broadcast` counts toward `paid_per_second` over all sends, paid
    or not; one without, toward `overall_per_second` over the free sends only (the Bot API:
    paid sends "ignore broadcasting limits", up to 1,000 a second). Per-chat limits apply
    to both.
    """

    overall_per_second: int = 30
    paid_per_second: int = 1000
    per_chat_per_second: int = 1  # every chat, private or not
    per_group_per_minute: int = 20  # chats with negative ids: groups, supergroups, channels
    retry_after: int = 1  # the least retry_after answered; longer when the window needs it
    slack: float = 0.05


def counts_as_send(method: str) -> bool:
    """Calls that post or change a message count toward the sending limits of their chat."""
    sends = method.startswith(("send", "edit")) and method != "sendChatAction"
    return sends or method in RELAYS


@dataclass
class _Fault:
    status: int
    description: str
    parameters: JSONDict | None
    count: int


HANG_UP = -1  # a "status" that closes the connection unanswered: the client sees a network error
TOKEN_SHAPE = re.compile(r"\d+:[A-Za-z0-9_-]+")  # anything else is 404 Not Found, as on Telegram


def _coerce_one(value: Any, kind: str) -> tuple[bool, Any]:
    """Loose parse of one value as one Bot API type; form values arrive as strings."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "Integer":
        if isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d+\s*", value):
            return True, int(value)
        whole = number and float(value).is_integer()
        return whole, int(value) if whole else value
    if kind == "Float":
        if isinstance(value, str):
            try:
                return True, float(value)
            except ValueError:
                return False, value
        return number, value
    if kind == "Boolean":
        if isinstance(value, str) and value.lower() in {"true", "false", "1", "0"}:
            return True, value.lower() in {"true", "1"}
        return isinstance(value, bool), value
    if kind == "String":
        return number or isinstance(value, str), str(value) if number else value
    if kind == "InputFile":
        return isinstance(value, str | UploadedFile), value
    if isinstance(value, str):  # objects and arrays travel as JSON-serialized strings
        try:
            value = json.loads(value)
        except ValueError:
            return False, value
    return isinstance(value, list if kind.startswith("Array of ") else dict), value


def coerce_params(method: str, raw: JSONDict) -> JSONDict:
    """Check required fields and types against the table; return params with parsed values."""
    fields: dict[str, JSONDict] = load_table()["methods"][method].get("fields", {})
    for name, spec in fields.items():
        if spec["required"] and name not in raw:
            raise bad_request(f"{name} is required")
    params = dict(raw)
    for name, value in raw.items():
        if name not in fields:
            continue  # Telegram ignores unknown parameters
        types: list[str] = fields[name]["types"]
        for kind in types:
            ok, parsed = _coerce_one(value, kind)
            if ok:
                params[name] = parsed
                break
        else:
            raise bad_request(f"can't parse {name}: expected {' or '.join(types)}")
    return params


def _parse_multipart(content_type: str, body: bytes) -> JSONDict:
    """multipart/form-data via the stdlib email parser (the cgi module is deprecated)."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    params: JSONDict = {}
    for part in msg.walk():
        if part.is_multipart():
            continue
        name = str(part.get_param("name", header="content-disposition"))
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        if filename is not None:
            params[name] = UploadedFile(filename, part.get_content_type(), data)
        else:
            params[name] = data.decode(part.get_content_charset() or "utf-8")
    return params


def decode_request(query: str, content_type: str, body: bytes) -> JSONDict:
    """Merge query-string and body params: urlencoded, multipart or JSON, as Telegram accepts."""
    params: JSONDict = dict(parse_qsl(query, keep_blank_values=True))
    mime = content_type.split(";")[0].strip().lower()
    if not body:
        return params
    if mime == "application/json":
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise bad_request("can't parse JSON object") from exc
        if not isinstance(data, dict):
            raise bad_request("JSON object expected")
        params.update(data)
    elif mime == "multipart/form-data":
        params.update(_parse_multipart(content_type, body))
    else:
        params.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    return params


class BotApiEmulator:
    """One fake Telegram server and bot: chats, members, queued updates and sent messages."""

    def __init__(
        self, token: str = "123456:TEST-TOKEN", bot_username: str = "tidings_test_bot", *,
        enforce_limits: bool = False, limits: Limits | None = None, latency: float = 0.0,
        port: int = 0,
    ) -> None:  # fmt: skip
        self.token, self.bot_username = token, bot_username
        self.port = port  # 0: any free port; a fixed one lets a test start the server late
        self.enforce_limits = enforce_limits  # answer 429 beyond `limits`; may be toggled live
        self.limits = limits or Limits()
        self.latency = latency  # seconds every LATENCY_METHODS response is held back
        self.too_many_requests = 0  # 429s answered because of `limits`
        # Each of those 429s: (time.monotonic(), chat, the windows that were full)
        self.throttled: list[tuple[float, int | str | None, str]] = []
        self.injected_faults = 0  # fail_next, fail_always, random_faults, malformed_next answers
        # Answers held back by `latency` or slow_next, in the order they were: (method, seconds)
        self.held: list[tuple[str, float]] = []
        self.peak_held = 0  # the most answers held back at once: calls served in parallel
        self.cut_short = 0  # held answers that stop() released before their time
        self.bot_user: JSONDict = {
            "id": int(token.split(":")[0]), "is_bot": True, "first_name": "Tidings Test",
            "username": bot_username, "can_join_groups": True, "can_read_all_group_messages": False,
            "supports_inline_queries": False, "can_connect_to_business": False,
            "has_main_web_app": False,
        }  # fmt: skip
        self.calls: list[tuple[str, JSONDict]] = []
        self.rejected: list[JSONDict] = []
        self.errors: list[BaseException] = []  # bugs inside the emulator itself
        self.callback_answers: list[JSONDict] = []
        self.webhook_url = ""
        self.callers: list[tuple[str, str]] = []  # (caller, method): see caller_of
        self._cond = threading.Condition()  # guards all state below
        self._users: dict[int, JSONDict] = {self.bot_user["id"]: self._public_user(self.bot_user)}
        self._chats: dict[int, JSONDict] = {}
        self._members: dict[tuple[int, int], str] = {}
        self._updates: list[JSONDict] = []
        self._next_update_id = 1
        self._allowed_updates: list[str] = []
        self._poll_generation = 0
        self._stored: dict[tuple[int, int], JSONDict] = {}  # every live message by (chat, id)
        self._files: dict[str, tuple[JSONDict, UploadedFile]] = {}  # file_id -> (File, upload)
        self._last_id: dict[int, int] = defaultdict(int)
        self._sent: dict[int, list[SentMessage]] = defaultdict(list)
        self._callbacks: dict[str, bool] = {}  # issued query id -> answered
        self._commands: dict[tuple[str, str], list[JSONDict]] = {}
        self._faults: dict[str, list[_Fault]] = defaultdict(list)
        self._random_faults: dict[str, tuple[float, _Fault, random.Random]] = {}
        self._outages: dict[str, _Fault] = {}  # fail_always: failing until recover()
        self._slow: dict[str, list[list[float]]] = defaultdict(list)  # [seconds, calls left]
        self._stopping = threading.Event()  # wakes slow answers when the server stops
        self._holding = 0  # answers held back right now
        self._blocked: set[int | str] = set()
        self._malformed: dict[str, int] = defaultdict(int)  # malformed_next answers left
        self._all_sends: list[float] = []  # monotonic times of accepted sends, any chat
        self._free_sends: list[float] = []  # ... of those without allow_paid_broadcast
        self.paid_sends = 0  # accepted sends with allow_paid_broadcast
        # The bot's Star balance in tenths (a paid send costs one); None: never runs out.
        self.star_tenths: int | None = None
        self._chat_sends: dict[int | str, list[float]] = defaultdict(list)
        self._closing = False
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """Root URL to hand the app as TELEGRAM_API_URL (PTB gets `{base_url}/bot`)."""
        if self._server is None:
            raise RuntimeError("BotApiEmulator is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> BotApiEmulator:
        self._closing = False
        self._stopping.clear()
        self._server = _Server(("127.0.0.1", self.port), _Handler)
        self._server.emulator = self
        serve = functools.partial(self._server.serve_forever, poll_interval=0.05)
        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release pending long polls, cut idle keep-alive connections, then join threads."""
        if self._server is None or self._thread is None:
            return
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._stopping.set()
        self._server.shutdown()
        self._server.drop_connections()
        self._server.server_close()  # joins the handler threads
        self._thread.join()
        self._server = self._thread = None

    def __enter__(self) -> BotApiEmulator:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- world -----------------------------------------------------------------------------

    @staticmethod
    def _public_user(user: JSONDict) -> JSONDict:
        keys = ("id", "is_bot", "first_name", "last_name", "username", "language_code")
        return {k: user[k] for k in keys if k in user}

    def user(
        self, user_id: int, first_name: str = "Ann", language_code: str | None = "en",
        username: str | None = None,
    ) -> JSONDict:  # fmt: skip
        """Register a human user (getChatMember knows only registered users); return the User."""
        user: JSONDict = {"id": user_id, "is_bot": False, "first_name": first_name}
        if username:
            user["username"] = username
        if language_code:
            user["language_code"] = language_code
        with self._cond:
            self._users[user_id] = user
        return dict(user)

    def _add_chat(self, chat: JSONDict) -> JSONDict:
        with self._cond:
            self._chats[chat["id"]] = chat
        return dict(chat)

    def private_chat(self, user: JSONDict) -> JSONDict:
        chat = {"id": user["id"], "type": "private", "first_name": user["first_name"]}
        if user.get("username"):
            chat["username"] = user["username"]
        return self._add_chat(chat)

    def group(
        self, chat_id: int, title: str, supergroup: bool = False, is_forum: bool = False
    ) -> JSONDict:
        kind = "supergroup" if supergroup or is_forum else "group"
        chat: JSONDict = {"id": chat_id, "type": kind, "title": title}
        return self._add_chat(chat | ({"is_forum": True} if is_forum else {}))

    def channel(self, chat_id: int, title: str) -> JSONDict:
        return self._add_chat({"id": chat_id, "type": "channel", "title": title})

    def set_member_status(self, chat_id: int, user_id: int, status: str) -> None:
        """What getChatMember reports: creator, administrator, member, restricted, left, kicked."""
        with self._cond:
            self._members[(chat_id, user_id)] = status

    # -- injection -------------------------------------------------------------------------

    def inject(self, update: JSONDict) -> JSONDict:
        """Queue any update (update_id assigned when missing) and wake pending long polls."""
        with self._cond:
            update = {"update_id": self._next_update_id, **update}
            self._next_update_id = max(self._next_update_id, update["update_id"]) + 1
            self._updates.append(update)
            self._cond.notify_all()
        return update

    def _new_message(self, chat: JSONDict, sender: JSONDict | None, thread: int | None) -> JSONDict:
        """Allocate the chat's next message id and fill the fields every message carries."""
        self._last_id[chat["id"]] += 1
        msg: JSONDict = {"message_id": self._last_id[chat["id"]], "date": int(time.time())}
        if chat["type"] == "channel":
            msg["sender_chat"] = dict(chat)
        elif sender is None:  # anonymous group admin
            msg["from"], msg["sender_chat"] = dict(ANONYMOUS_ADMIN), dict(chat)
        else:
            msg["from"] = self._public_user(sender)
        msg["chat"] = dict(chat)
        if thread is not None and chat.get("is_forum"):
            msg["message_thread_id"], msg["is_topic_message"] = thread, True
        return msg

    def send_text(
        self, chat: JSONDict, user: JSONDict | None, text: str, *,
        message_thread_id: int | None = None, reply_to_message_id: int | None = None,
    ) -> JSONDict:  # fmt: skip
        """Queue a user's text message (a channel post when the chat is a channel)."""
        fields = {"text": text}
        return self._queue_message(chat, user, fields, message_thread_id, reply_to_message_id)

    def send_document(
        self, chat: JSONDict, user: JSONDict | None, data: bytes, file_name: str, *,
        caption: str | None = None, mime_type: str = "application/octet-stream",
        message_thread_id: int | None = None, reply_to_message_id: int | None = None,
    ) -> JSONDict:  # fmt: skip
        """Queue a user's document; getFile and the file URL serve its bytes to the bot."""
        with self._cond:
            fields: JSONDict = {"document": self._store_file(file_name, mime_type, data)}
        if caption is not None:
            fields["caption"] = caption
        return self._queue_message(chat, user, fields, message_thread_id, reply_to_message_id)

    def _queue_message(
        self, chat: JSONDict, user: JSONDict | None, fields: JSONDict, thread: int | None,
        reply_to: int | None,
    ) -> JSONDict:  # fmt: skip
        """Store a user's message (a leading /command gets its entity) and queue its update."""
        with self._cond:
            chat = self._chats.setdefault(chat["id"], dict(chat))
            if user is not None:
                self._users.setdefault(user["id"], dict(user))
            msg = self._new_message(chat, user, thread) | fields
            key = "text" if "text" in fields else "caption"
            command = COMMAND.match(fields.get(key, ""))
            if command:
                entity = {"type": "bot_command", "offset": 0, "length": utf16_len(command[0])}
                msg["entities" if key == "text" else "caption_entities"] = [entity]
            if reply_to is not None:
                msg["reply_to_message"] = self._quoted(self._stored[(chat["id"], reply_to)])
            self._stored[(chat["id"], msg["message_id"])] = msg
            self.inject({"channel_post" if chat["type"] == "channel" else "message": msg})
        return msg

    def _store_file(self, file_name: str, mime_type: str, data: bytes) -> JSONDict:
        """Keep a file for getFile and downloads; return its Document (caller holds the lock)."""
        n = len(self._files) + 1
        file: JSONDict = {"file_id": f"document-{n}", "file_unique_id": f"unique-{n}"}
        file |= {"file_size": len(data), "file_path": f"documents/file_{n}{Path(file_name).suffix}"}
        self._files[file["file_id"]] = (file, UploadedFile(file_name, mime_type, data))
        return self._document(file["file_id"])

    def _document(self, file_id: str) -> JSONDict:
        file, upload = self._files[file_id]
        document = {k: file[k] for k in ("file_id", "file_unique_id", "file_size")}
        return document | {"file_name": upload.filename, "mime_type": upload.content_type}

    def download(self, token: str, file_path: str) -> tuple[int, str, bytes]:
        """Serve GET /file/bot<token>/<file_path>: status, content type and body."""
        with self._cond:
            if token != self.token:
                body: JSONDict = {"ok": False, "error_code": 401, "description": "Unauthorized"}
                return 401, "application/json", json.dumps(body).encode()
            for file, upload in self._files.values():
                if file["file_path"] == file_path:
                    return 200, upload.content_type, upload.data
        return 404, "application/json", json.dumps(NOT_FOUND).encode()

    @staticmethod
    def _quoted(message: JSONDict) -> JSONDict:
        """A message as embedded in reply_to_message: Telegram does not nest replies further."""
        return {k: v for k, v in message.items() if k != "reply_to_message"}

    def press_button(self, chat: JSONDict, user: JSONDict, message_id: int, data: str) -> str:
        """Queue a callback_query on a stored message; returns the query id to answer."""
        with self._cond:
            message = self._stored.get((chat["id"], message_id))
            if message is None:
                raise KeyError(f"no message {message_id} in chat {chat['id']}")
            query_id = str(4_000_000_000_000_000 + len(self._callbacks))
            self._callbacks[query_id] = False
            query = {"id": query_id, "from": self._public_user(user), "message": dict(message)}
            query |= {"chat_instance": str(abs(chat["id"]) * 7 + 3), "data": data}
            self.inject({"callback_query": query})
        return query_id

    # -- observation -----------------------------------------------------------------------

    def messages(self, chat_id: int) -> list[SentMessage]:
        """Copies of what the bot sent to the chat, oldest first (deleted ones flagged)."""
        with self._cond:
            return [dataclasses.replace(m) for m in self._sent.get(chat_id, [])]

    def wait_for_messages(
        self, chat_id: int, count: int, timeout: float = 10.0
    ) -> list[SentMessage]:
        """Block until the bot sent `count` messages to the chat; say what it has if not."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._sent[chat_id]) >= count, timeout):
                texts = [m.text for m in self._sent[chat_id]]
                raise AssertionError(
                    f"expected {count} messages in chat {chat_id} within {timeout}s, got "
                    f"{len(texts)}: {texts!r}; rejected calls: {self.rejected!r}"
                )
            return self.messages(chat_id)

    def wait_for_calls(self, method: str, count: int = 1, timeout: float = 10.0) -> list[JSONDict]:
        """Block until `method` was called `count` times; return the params of those calls."""

        def matching() -> list[JSONDict]:
            return [params for name, params in self.calls if name == method]

        with self._cond:
            if not self._cond.wait_for(lambda: len(matching()) >= count, timeout):
                raise AssertionError(f"expected {count} {method} calls, got {len(matching())}")
            return matching()

    def answered_callbacks(self, query_id: str) -> list[JSONDict]:
        """answerCallbackQuery params sent for this query id (empty when never answered)."""
        with self._cond:
            return [a for a in self.callback_answers if a["callback_query_id"] == query_id]

    def commands(
        self, language_code: str | None = None, scope: JSONDict | None = None
    ) -> list[JSONDict]:
        """Commands set via setMyCommands for this language and scope (default scope)."""
        with self._cond:
            return list(self._commands.get(self._commands_key(scope, language_code), []))

    def send_times(self, chat_id: int | str) -> list[float]:
        """time.monotonic() of every accepted send to the chat (recorded with limits off too)."""
        with self._cond:
            return list(self._chat_sends.get(chat_id, []))

    def sends_accepted(self) -> int:
        """Accepted sends so far, every chat: a cheap progress count for a long fan-out."""
        with self._cond:
            return len(self._all_sends)

    def max_rate(self, window: float = 1.0, chat_id: int | str | None = None) -> int:
        """Most accepted sends within any `window` seconds (less slack, as enforced): overall
        or to one chat; with limits off it tells whether the bot would have stayed within them.
        """
        with self._cond:
            times = list(self._all_sends if chat_id is None else self._chat_sends.get(chat_id, []))
            span = window - self.limits.slack
        best = start = 0
        for end, moment in enumerate(times):
            while moment - times[start] >= span:
                start += 1
            best = max(best, end - start + 1)
        return best

    # -- faults ----------------------------------------------------------------------------

    def fail_next(
        self, method: str, status: int = 500, description: str = "Internal Server Error",
        retry_after: int | None = None, count: int = 1, migrate_to_chat_id: int | None = None,
    ) -> None:  # fmt: skip
        """Make the next `count` calls of `method` fail; retry_after alone means a 429."""
        parameters: JSONDict = {}
        if retry_after is not None:
            parameters["retry_after"] = retry_after
            if status == 500 and description == "Internal Server Error":
                status, description = 429, f"Too Many Requests: retry after {retry_after}"
        if migrate_to_chat_id is not None:
            parameters["migrate_to_chat_id"] = migrate_to_chat_id
        with self._cond:
            self._faults[method].append(_Fault(status, description, parameters or None, count))

    def malformed_next(self, method: str, count: int = 1) -> None:
        """Perform the next `count` calls of `method` (a message counts as delivered) but answer
        each with a result that is not the type Telegram promises, as a broken proxy might."""
        with self._cond:
            self._malformed[method] += count

    def random_faults(
        self, method: str = "sendMessage", rate: float = 0.1, status: int = 502,
        seed: int | None = 0, description: str | None = None, retry_after: int = 1,
    ) -> None:  # fmt: skip
        """Fail about `rate` of the calls of `method` (seeded: reproducible); rate 0 stops it.

        A 429 carries `retry_after`; the description defaults to the status's HTTP phrase.
        """
        if not 0 <= rate <= 1:
            raise ValueError(f"rate must be within 0..1, not {rate}")
        parameters = {"retry_after": retry_after} if status == 429 else None
        if description is None and status == 429:
            description = f"Too Many Requests: retry after {retry_after}"
        elif description is None:
            try:
                description = HTTPStatus(status).phrase
            except ValueError:
                description = "Error"
        with self._cond:
            if rate == 0:
                self._random_faults.pop(method, None)
            else:
                fault = _Fault(status, description, parameters, 0)
                self._random_faults[method] = (rate, fault, random.Random(seed))

    def fail_always(
        self, method: str, status: int = 500, description: str | None = None, *,
        retry_after: int | None = None, hang_up: bool = False,
    ) -> None:  # fmt: skip
        """An outage: every call of `method` fails until recover(); fail_next waits behind it.

        `hang_up` closes the connection without an answer (a network error to the client).
        The description defaults to the status's HTTP phrase; a 429 carries `retry_after`.
        """
        parameters = None if retry_after is None else {"retry_after": retry_after}
        if description is None:
            try:
                description = HTTPStatus(status).phrase
            except ValueError:
                description = "Error"
        fault = _Fault(HANG_UP if hang_up else status, description, parameters, 0)
        with self._cond:
            self._outages[method] = fault

    def recover(self, method: str | None = None) -> None:
        """End the outage, pending fail_next faults and random faults of `method` (None: all)."""
        with self._cond:
            for faults in (self._outages, self._faults, self._random_faults):
                if method is None:
                    faults.clear()
                else:
                    faults.pop(method, None)

    def age_message(self, chat_id: int, message_id: int, seconds: float) -> None:
        """Date a stored message `seconds` earlier: as Telegram shows one sent that long ago
        (its date travels with it, e.g. in a reply's reply_to_message)."""
        with self._cond:
            self._stored[(chat_id, message_id)]["date"] -= int(seconds)

    def slow_next(self, method: str, seconds: float, count: int = 1) -> None:
        """The next `count` calls of `method` take effect at once but are answered `seconds`
        late, so a client that times out first cannot tell whether the call happened."""
        with self._cond:
            self._slow[method].append([seconds, count])

    def block(self, chat_id: int | str) -> None:
        """The user blocked the bot (or a group kicked it): every later send gets a 403."""
        with self._cond:
            self._blocked.add(chat_id)

    def unblock(self, chat_id: int | str) -> None:
        with self._cond:
            self._blocked.discard(chat_id)

    # -- dispatch --------------------------------------------------------------------------

    def handle(self, token: str, method: str, raw: JSONDict) -> tuple[int, JSONDict]:
        """Serve one call, then hold slow responses back outside the lock (others go on)."""
        method = _method_names().get(method.lower(), method)
        with self._cond:
            answer = self._serve(token, method, raw)
            hold = self._take_slow(method)
            if self.latency > 0 and method in LATENCY_METHODS:
                hold += self.latency
            if hold:
                self.held.append((method, hold))
                self._holding += 1
                self.peak_held = max(self.peak_held, self._holding)
        if hold:
            cut = self._stopping.wait(hold)  # stop() ends the wait: a test never hangs on it
            with self._cond:
                self._holding -= 1
                self.cut_short += int(cut)
        return answer

    def _take_slow(self, method: str) -> float:
        """Seconds the next slow_next answer of `method` is held back (0: answer now)."""
        queue = self._slow.get(method)
        if not queue:
            return 0.0
        seconds, queue[0][1] = queue[0][0], queue[0][1] - 1
        if queue[0][1] <= 0:
            queue.pop(0)
        return seconds

    def _serve(self, token: str, method: str, raw: JSONDict) -> tuple[int, JSONDict]:
        """Auth, lookup, faults, validation, block and limits, then the method's behaviour."""
        params, logged = raw, False
        try:
            if not TOKEN_SHAPE.fullmatch(token):
                raise ApiError(404, "Not Found")
            if token != self.token:
                raise ApiError(401, "Unauthorized")
            if method not in load_table()["methods"]:
                raise ApiError(404, "Not Found")
            fault = self._outages.get(method) or self._take_fault(method)
            if fault is not None:
                self.injected_faults += 1
                raise ApiError(fault.status, fault.description, fault.parameters, blame=False)
            params = coerce_params(method, raw)
            self._check_text(method, params)
            target, now = self._target(params), time.monotonic()
            if method.startswith(("send", "edit")) or method in RELAYS:
                self._check_blocked(target)
            paid = bool(params.get("allow_paid_broadcast")) and counts_as_send(method)
            if paid:
                self._check_stars()
            if counts_as_send(method) and self.enforce_limits:
                self._check_limits(target, now, paid)
            self._log(method, params)
            logged = True
            result = self._handler(method)(params)
            if paid:
                self.paid_sends += 1
                if self.star_tenths is not None:
                    self.star_tenths -= 1
            if counts_as_send(method):
                self._all_sends.append(now)
                if not paid:
                    self._free_sends.append(now)
                if target is not None:
                    self._chat_sends[target].append(now)
            if self._malformed.get(method):
                self._malformed[method] -= 1
                self.injected_faults += 1
                result = MALFORMED
            return 200, {"ok": True, "result": result}
        except ApiError as err:
            return self._error(method, params, err, err.blame, logged)
        except Exception as exc:  # an emulator bug: fail loudly, not as a hung test
            self.errors.append(exc)
            return self._error(method, params, ApiError(500, f"emulator bug: {exc!r}"))

    def _target(self, params: JSONDict) -> int | str | None:
        """The chat a call addresses: its id (@usernames resolved when known), None if none."""
        chat_id = params.get("chat_id")
        if isinstance(chat_id, str):
            name = chat_id.removeprefix("@").lower()
            found = [c["id"] for c in self._chats.values() if c.get("username", "").lower() == name]
            return found[0] if found else chat_id
        return chat_id if isinstance(chat_id, int) else None

    def _check_blocked(self, target: int | str | None) -> None:
        if target is None or target not in self._blocked:
            return
        kind = self._chats.get(target, {}).get("type")
        if kind == "channel":
            reason = "bot is not a member of the channel chat"
        elif kind == "supergroup":
            reason = "bot was kicked from the supergroup chat"
        elif kind == "group" or (isinstance(target, int) and target < 0):
            reason = "bot was kicked from the group chat"
        else:
            reason = "bot was blocked by the user"
        raise ApiError(403, f"Forbidden: {reason}", blame=False)

    def _check_stars(self) -> None:
        """A paid send the balance cannot cover is refused. The Bot API documents no error for
        it; assumed a 400 naming the condition, as Telegram's other balance errors do."""
        if self.star_tenths is not None and self.star_tenths < 1:
            raise ApiError(400, "Bad Request: BALANCE_TOO_LOW", blame=False)

    def set_star_balance(self, stars: float) -> None:
        """The bot's Stars; each paid send takes 0.1 of them."""
        with self._cond:
            self.star_tenths = round(stars * 10)

    def _check_limits(self, target: int | str | None, now: float, paid: bool = False) -> None:
        """429 when accepting a send now would overfill a window; retry_after says how long."""
        limits = self.limits
        windows = ([(self._all_sends, limits.paid_per_second, 1.0, "paid")] if paid
                   else [(self._free_sends, limits.overall_per_second, 1.0, "overall")])
        if target is not None:
            times = self._chat_sends[target]
            windows.append((times, limits.per_chat_per_second, 1.0, "chat"))
            if isinstance(target, int) and target < 0:
                windows.append((times, limits.per_group_per_minute, 60.0, "group"))
        wait, full = 0.0, []
        for times, limit, span, name in windows:
            cutoff = now - span + limits.slack  # sends after this are inside the window
            inside = len(times) - bisect.bisect_right(times, cutoff)  # times are in order
            if inside >= limit:  # free once the oldest of the last `limit` leaves
                wait = max(wait, (times[-limit] if limit > 0 else now) - cutoff, 1e-9)
                full.append(name)
        if wait > 0:
            self.too_many_requests += 1
            self.throttled.append((now, target, "+".join(full)))
            retry = max(limits.retry_after, math.ceil(wait))
            raise ApiError(
                429, f"Too Many Requests: retry after {retry}", {"retry_after": retry}, blame=False
            )

    def _log(self, method: str, params: JSONDict) -> None:
        self.calls.append((method, params))
        self._cond.notify_all()

    def _handler(self, method: str) -> Callable[[JSONDict], Any]:
        """The `_m_<method>` behaviour; other send* methods store a caption-only message."""
        handler: Callable[[JSONDict], Any] | None = getattr(self, f"_m_{method}", None)
        if handler is not None:
            return handler
        if method.startswith("send") and load_table()["methods"][method]["returns"] == ["Message"]:
            return lambda params: self._send(method, params, params.get("caption", ""), "caption")
        return lambda params: True

    def _error(
        self, method: str, params: JSONDict, err: ApiError, blame: bool = True, logged: bool = False
    ) -> tuple[int, JSONDict]:
        if not logged:
            self._log(method, params)
        if blame:
            self.rejected.append(
                {"method": method, "params": params, "description": err.description}
            )
        body: JSONDict = {"ok": False, "error_code": err.status, "description": err.description}
        if err.parameters:
            body["parameters"] = err.parameters
        return err.status, body

    def _take_fault(self, method: str) -> _Fault | None:
        """The next fail_next fault for the method, else maybe a random one."""
        queue = self._faults.get(method)
        if not queue:
            rate, fault, rng = self._random_faults.get(method, (0.0, None, None))
            return fault if rng is not None and rng.random() < rate else None
        queue[0].count -= 1
        return queue.pop(0) if queue[0].count <= 0 else queue[0]

    def _check_text(self, method: str, params: JSONDict) -> None:
        """Parse mode, entity parsing and the UTF-16 length limits of texts and captions."""
        if "text" in params and method in {"sendMessage", "editMessageText"}:
            plain = self._plain(params["text"], params.get("parse_mode"))[0]
            if not plain.strip():
                raise bad_request("message text is empty")
            if utf16_len(plain) > TEXT_LIMIT:
                raise bad_request("message is too long")
        elif method == "editMessageText" and "rich_message" not in params:
            raise bad_request("message text is empty")
        if isinstance(params.get("caption"), str):
            plain = self._plain(params["caption"], params.get("parse_mode"))[0]
            if utf16_len(plain) > CAPTION_LIMIT:
                raise bad_request("message caption is too long")

    @staticmethod
    def _plain(text: str, parse_mode: str | None) -> tuple[str, list[JSONDict]]:
        """Text and entities as Telegram stores them; Markdown is passed through unchecked."""
        mode = (parse_mode or "").lower()
        if mode == "html":
            try:
                return parse_html_entities(text)
            except TelegramHtmlError as err:
                raise bad_request(f"can't parse entities: {str(err).split(': ', 1)[1]}") from err
        if mode not in {"", "markdown", "markdownv2"}:
            raise bad_request(f"unsupported parse_mode {parse_mode!r}")
        return text, []

    def _chat(self, chat_id: int | str) -> JSONDict:
        if isinstance(chat_id, str):  # @username
            name = chat_id.removeprefix("@").lower()
            found = [c for c in self._chats.values() if c.get("username", "").lower() == name]
            chat = found[0] if found else None
        else:
            chat = self._chats.get(chat_id)
        if chat is None:
            raise bad_request("chat not found")
        return chat

    @staticmethod
    def _commands_key(scope: JSONDict | None, language_code: str | None) -> tuple[str, str]:
        return json.dumps(scope or {"type": "default"}, sort_keys=True), language_code or ""

    @staticmethod
    def _check_markup(markup: JSONDict | None) -> None:
        """Inline keyboard checks that bite in practice: callback_data size, no-op buttons."""
        for row in (markup or {}).get("inline_keyboard", []):
            for button in row:
                if not any(key in button for key in BUTTON_ACTIONS):
                    raise bad_request(
                        "can't parse inline keyboard button: Text buttons are unallowed in the "
                        "inline keyboard"
                    )
                data = button.get("callback_data")
                if data is not None and not 1 <= len(str(data).encode()) <= CALLBACK_DATA_LIMIT:
                    raise bad_request("BUTTON_DATA_INVALID")
                url = button.get("url")
                if url is not None and not re.match(r"(https?|tg)://\S+$", str(url)):
                    raise bad_request(f"inline keyboard button URL '{url}' is invalid")

    # -- sending and editing ---------------------------------------------------------------

    def _send(self, method: str, params: JSONDict, raw_text: str, text_key: str) -> JSONDict:
        """Store a bot message (text or caption) and return the Message dict Telegram would."""
        chat = self._chat(params["chat_id"])
        markup = params.get("reply_markup")
        self._check_markup(markup)
        ent_key = "entities" if text_key == "text" else "caption_entities"
        plain, entities = self._plain(raw_text, params.get("parse_mode"))
        entities = entities or params.get(ent_key, [])  # explicit entities instead of parse_mode
        reply = params.get("reply_parameters") or {}
        replied = self._stored.get((chat["id"], reply.get("message_id", 0)))
        if reply and replied is None and not reply.get("allow_sending_without_reply"):
            raise bad_request("message to be replied not found")
        thread = params.get("message_thread_id")
        msg = self._new_message(chat, self.bot_user, thread)
        n = msg["message_id"]
        if method == "sendPhoto":
            msg["photo"] = [
                {"file_id": f"p{n}", "file_unique_id": f"p{n}", "width": 1, "height": 1}
            ]
        elif method == "sendDocument":
            msg["document"] = self._sent_document(params["document"], n)
        if plain or text_key == "text":
            msg[text_key] = plain
        if entities:
            msg[ent_key] = entities
        if replied is not None:
            msg["reply_to_message"] = self._quoted(replied)
        if markup and "inline_keyboard" in markup:  # reply keyboards are not echoed back
            msg["reply_markup"] = markup
        self._stored[(chat["id"], n)] = msg
        parse_mode = params.get("parse_mode")
        sent = SentMessage(
            n, chat["id"], plain, raw_text, parse_mode, markup, thread, method=method
        )
        if msg.get("document", {}).get("file_id") in self._files:
            upload = self._files[msg["document"]["file_id"]][1]
            sent.document, sent.file_name = upload.data, upload.filename
        if method == "sendPhoto" and isinstance(params["photo"], UploadedFile):  # its bytes too
            sent.document, sent.file_name = params["photo"].data, params["photo"].filename
        self._sent[chat["id"]].append(sent)
        return msg

    def _sent_document(self, document: UploadedFile | str, n: int) -> JSONDict:
        """An upload is stored as a new file; a known file_id is reused, anything else opaque."""
        if isinstance(document, UploadedFile):
            return self._store_file(document.filename, document.content_type, document.data)
        if document in self._files:
            return self._document(document)
        return {"file_id": f"d{n}", "file_unique_id": f"d{n}"}  # e.g. a URL Telegram would fetch

    def _m_sendMessage(self, params: JSONDict) -> JSONDict:
        return self._send("sendMessage", params, params["text"], "text")

    def _edit(self, params: JSONDict, text: str | None) -> JSONDict | bool:
        """Apply an edit; omitting reply_markup drops the inline keyboard, as on Telegram."""
        markup = params.get("reply_markup")
        self._check_markup(markup)
        if "inline_message_id" in params:
            return True  # inline messages are not tracked
        if "chat_id" not in params or "message_id" not in params:
            raise bad_request("message identifier is not specified")
        chat = self._chat(params["chat_id"])
        msg = self._stored.get((chat["id"], params["message_id"]))
        if msg is None:
            raise bad_request("message to edit not found")
        sent = [m for m in self._sent[chat["id"]] if m.message_id == params["message_id"]]
        if not sent:
            raise bad_request("message can't be edited")
        key = "text" if "text" in msg else "caption"
        ent_key = "entities" if key == "text" else "caption_entities"
        old = (msg.get(key, ""), msg.get(ent_key, []), msg.get("reply_markup"))
        plain, entities = old[:2] if text is None else self._plain(text, params.get("parse_mode"))
        entities = entities or params.get(ent_key, [])
        new_markup = markup if markup and "inline_keyboard" in markup else None
        if (plain, entities, new_markup) == old:  # a button pressed twice, say: not a bot bug
            raise ApiError(400, f"Bad Request: {NOT_MODIFIED}", blame=False)
        for field in (ent_key, "reply_markup"):
            msg.pop(field, None)
        msg |= {key: plain, "edit_date": int(time.time())}
        if entities:
            msg[ent_key] = entities
        if new_markup:
            msg["reply_markup"] = new_markup
        sent[0].text, sent[0].reply_markup, sent[0].edits = plain, markup, sent[0].edits + 1
        if text is not None:
            sent[0].html, sent[0].parse_mode = text, params.get("parse_mode")
        return msg

    def _m_editMessageText(self, params: JSONDict) -> JSONDict | bool:
        return self._edit(params, params.get("text"))

    def _m_editMessageCaption(self, params: JSONDict) -> JSONDict | bool:
        return self._edit(params, params.get("caption", ""))

    def _m_editMessageReplyMarkup(self, params: JSONDict) -> JSONDict | bool:
        return self._edit(params, None)

    def _m_deleteMessage(self, params: JSONDict) -> bool:
        chat_id = self._chat(params["chat_id"])["id"]
        if self._stored.pop((chat_id, params["message_id"]), None) is None:
            raise bad_request("message to delete not found")
        for sent in self._sent[chat_id]:
            sent.deleted = sent.deleted or sent.message_id == params["message_id"]
        return True

    # -- updates, webhooks, commands -------------------------------------------------------

    def _m_getMe(self, params: JSONDict) -> JSONDict:
        return dict(self.bot_user)

    def _m_getFile(self, params: JSONDict) -> JSONDict:
        if params["file_id"] not in self._files:
            raise bad_request("invalid file_id")
        file = self._files[params["file_id"]][0]
        if file["file_size"] > DOWNLOAD_LIMIT:
            raise bad_request("file is too big")
        return dict(file)

    def _m_getUpdates(self, params: JSONDict) -> list[JSONDict]:
        """Long polling: confirm below offset, then hold until an update or the timeout."""
        if self.webhook_url:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; use "
                "deleteWebhook to delete the webhook first",
            )
        offset = params.get("offset", 0)
        if offset > 0:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        elif offset < 0:
            self._updates = self._updates[offset:]
        if "allowed_updates" in params:
            self._allowed_updates = list(params["allowed_updates"])
        limit = min(max(params.get("limit", 100), 1), 100)
        deadline = time.monotonic() + max(params.get("timeout", 0), 0)
        self._poll_generation += 1
        generation = self._poll_generation
        self._cond.notify_all()  # a newer poll ends an older one with 409, as on Telegram
        while True:
            ready = [u for u in self._updates if self._allowed(u)][:limit]
            if ready or self._closing:
                return ready
            if generation != self._poll_generation:
                raise ApiError(409, POLL_CONFLICT, blame=False)  # hand-over, not a mistake
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            self._cond.wait(remaining)

    def _allowed(self, update: JSONDict) -> bool:
        kind = next(k for k in update if k != "update_id")
        if self._allowed_updates:
            return kind in self._allowed_updates
        return kind not in OPT_IN_UPDATES

    def _m_setWebhook(self, params: JSONDict) -> bool:
        self.webhook_url = params.get("url", "")
        if params.get("drop_pending_updates"):
            self._updates.clear()
        return True

    _m_deleteWebhook = _m_setWebhook  # no url given: webhook removed

    def _m_getWebhookInfo(self, params: JSONDict) -> JSONDict:
        info = {"url": self.webhook_url, "has_custom_certificate": False}
        return info | {"pending_update_count": len(self._updates)}

    def _m_setMyCommands(self, params: JSONDict) -> bool:
        for cmd in params["commands"]:
            if not re.fullmatch(r"[a-z0-9_]{1,32}", str(cmd.get("command", ""))):
                raise bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(cmd.get("description", "")).strip()) <= 256:
                raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        if len(params["commands"]) > 100:
            raise bad_request("too many commands")
        key = self._commands_key(params.get("scope"), params.get("language_code"))
        self._commands[key] = [dict(c) for c in params["commands"]]
        return True

    def _m_getMyCommands(self, params: JSONDict) -> list[JSONDict]:
        key = self._commands_key(params.get("scope"), params.get("language_code"))
        return list(self._commands.get(key, []))

    def _m_deleteMyCommands(self, params: JSONDict) -> bool:
        self._commands.pop(self._commands_key(params.get("scope"), params.get("language_code")), 0)
        return True

    def _m_answerCallbackQuery(self, params: JSONDict) -> bool:
        if self._callbacks.get(params["callback_query_id"], True):  # unknown or answered
            raise bad_request(BAD_QUERY)
        self._callbacks[params["callback_query_id"]] = True
        self.callback_answers.append(params)
        return True

    # -- chats and members -----------------------------------------------------------------

    def _member(self, chat_id: int, user_id: int) -> JSONDict:
        """A ChatMember with every field PTB requires for its status."""
        if user_id not in self._users:
            raise bad_request("user not found")
        status = self._members.get((chat_id, user_id), "member")
        member: JSONDict = {"status": status, "user": self._public_user(self._users[user_id])}
        if status == "administrator":
            member |= {"can_be_edited": False, "is_anonymous": False}
            member |= dict.fromkeys(ADMIN_RIGHTS, True)
        elif status == "creator":
            member["is_anonymous"] = False
        elif status == "restricted":
            member |= {"is_member": True, "until_date": 0} | dict.fromkeys(RESTRICTIONS, False)
        elif status == "kicked":
            member["until_date"] = 0
        return member

    def _m_getChatMember(self, params: JSONDict) -> JSONDict:
        return self._member(self._chat(params["chat_id"])["id"], params["user_id"])

    def _m_getChatAdministrators(self, params: JSONDict) -> list[JSONDict]:
        chat = self._chat(params["chat_id"])
        if chat["type"] == "private":
            raise bad_request("there are no administrators in the private chat")
        admins = [u for (c, u), s in self._members.items() if c == chat["id"] and s != "member"]
        members = [self._member(chat["id"], user_id) for user_id in admins]
        return [m for m in members if m["status"] in {"creator", "administrator"}]

    def _m_getChat(self, params: JSONDict) -> JSONDict:
        gifts = dict.fromkeys(GIFT_TYPES.split(), False)
        extra = {"accent_color_id": 0, "max_reaction_count": 11, "accepted_gift_types": gifts}
        return self._chat(params["chat_id"]) | extra

    def _m_sendChatAction(self, params: JSONDict) -> bool:
        self._chat(params["chat_id"])
        if params["action"] not in CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        return True

    def _m_leaveChat(self, params: JSONDict) -> bool:
        self._members[(self._chat(params["chat_id"])["id"], self.bot_user["id"])] = "left"
        return True

    def deliver_webhook(
        self, update: JSONDict | None = None, secret: str | None = None, timeout: float = 10.0
    ) -> int:
        """POST an update to the URL setWebhook set, as Telegram does, with the secret_token it
        set (or `secret`; "" sends none); by default the oldest queued update, dequeued once
        answered 200. Returns the HTTP status the bot answered."""
        with self._cond:
            sets = [params for name, params in self.calls if name == "setWebhook"]
            url, queued = self.webhook_url, update is None
            if not url or not sets:
                raise AssertionError("no webhook set")
            if update is None:
                if not self._updates:
                    raise AssertionError("no update queued")
                update = self._updates[0]
        token = sets[-1].get("secret_token", "") if secret is None else secret
        headers = {"Content-Type": "application/json"}
        if token:
            headers["X-Telegram-Bot-Api-Secret-Token"] = token
        request = Request(url, json.dumps(update).encode(), headers, method="POST")
        try:
            with build_opener(ProxyHandler({})).open(request, timeout=timeout) as answer:
                status = int(answer.status)
        except HTTPError as error:
            status = error.code
        if status == 200 and queued:
            with self._cond:
                self._updates = [u for u in self._updates if u is not update]
        return status


class _Server(ThreadingHTTPServer):
    """Tracks open connections so stop() can cut the idle keep-alive sockets PTB's pool holds."""

    daemon_threads = True
    block_on_close = True  # server_close() joins handler threads
    emulator: BotApiEmulator

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        with self._open_lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hanging up (PTB cancelling a long poll) are normal; anything else is a bug."""
        exc = sys.exc_info()[1]
        if not isinstance(exc, ConnectionError):
            self.emulator.errors.append(exc or RuntimeError("unknown handler error"))
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like api.telegram.org
    disable_nagle_algorithm = True  # headers and body go out in two writes: avoid 40 ms stalls
    server: _Server

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        body = self._body()
        caller, path = caller_of(url.path)
        route = re.fullmatch(r"/bot([^/]+)/([A-Za-z0-9_]+)", path)
        emulator = self.server.emulator
        if route is None:
            status, payload = 404, NOT_FOUND
        else:
            emulator.callers.append((caller, route[2]))
            try:
                params = decode_request(url.query, self.headers.get("Content-Type", ""), body)
            except ApiError as err:
                with emulator._cond:
                    status, payload = emulator._error(route[2], {}, err)
            else:
                status, payload = emulator.handle(route[1], route[2], params)
        if status == HANG_UP:
            self.close_connection = True  # no answer at all: the client's request fails
            return
        self._reply(status, "application/json", json.dumps(payload).encode())

    def do_GET(self) -> None:
        """File downloads (PTB percent-encodes the token's colon); else a method call."""
        route = re.fullmatch(r"/file/bot([^/]+)/(.+)", unquote(urlsplit(self.path).path))
        if route is None:
            self.do_POST()
            return
        self._body()
        self._reply(*self.server.emulator.download(route[1], route[2]))

    def _reply(self, status: int, content_type: str, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes:
        """Request body; httpx sends Content-Length (chunked only for unsized streams)."""
        if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))
        chunks = []
        while size := int(self.rfile.readline().split(b";")[0], 16):
            chunks.append(self.rfile.read(size + 2)[:-2])  # chunk data plus CRLF
        self.rfile.readline()
        return b"".join(chunks)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: `emulator.calls` is the log."""


def caller_of(path: str) -> tuple[str, str]:
    """Tells bot processes apart: one given TELEGRAM_API_URL `{base_url}/NAME` calls
    `/NAME/bot…`, recorded in `callers` as NAME ("" without one), served as `/bot…`."""
    named = re.match(r"/([A-Za-z0-9_-]+)(?=/bot)", path)
    return (named[1], path[named.end():]) if named else ("", path)
