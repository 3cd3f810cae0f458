"""The Bot API's HTTP client: aiohttp under python-telegram-bot's request interface.

A fan-out is thousands of small POSTs, and their cost is the HTTP client's. With 20 calls in
flight, PTB's own HTTPXRequest spent 1.8 ms of CPU on each sendMessage (httpx's pure-Python
layers and httpcore's pool, which gets slower the more requests wait on it); PTB over aiohttp,
whose parser is C, 0.23 ms (`bench/http_clients.py`, the same run, a quiet 2-core machine).
PTB still builds each request and reads each answer: only the
transport changes, so every error reaches the bot as the same TelegramError it always did.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from telegram._utils.defaultvalue import DefaultValue
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

POOL = 512  # connections to the Bot API: more than jobs.pacing's paid senders, so none
# waits for one (PTB's HTTPXRequest keeps 256)
READ, WRITE, CONNECT, POOL_WAIT = 5.0, 5.0, 5.0, 1.0  # PTB's default timeouts, in seconds
JSON = {"Content-Type": "application/json"}
MEDIA_WRITE = 20.0  # an upload (a /trend chart) may take longer to send


class AiohttpRequest(BaseRequest):
    """One aiohttp session per request object, opened by `initialize` inside the running loop.

    aiohttp has no write timeout: a request's whole send and answer are bounded by the read
    timeout plus the write timeout, the connection (a free one from the pool included) by the
    connect timeout plus the pool timeout.
    """

    def __init__(self, pool: int = POOL, *, read_timeout: float | None = READ) -> None:
        self.pool = pool
        self._read_timeout = read_timeout
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[Any, ...], aiohttp.ClientTimeout] = {}

    @property
    def read_timeout(self) -> float | None:
        return self._read_timeout

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.pool),
                headers={"User-Agent": self.USER_AGENT},
            )

    async def shutdown(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        if self._session is None or self._session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized!")
        files = request_data.multipart_data if request_data else None
        timeout = self._timeout(read_timeout, write_timeout, connect_timeout, pool_timeout,
                                media=bool(files))
        data: aiohttp.FormData | bytes | None = None
        headers = None
        if files and request_data is not None:
            data = _form(request_data, files)
        elif request_data is not None:  # JSON, as the Bot API takes it: cheaper than a form
            data, headers = json.dumps(request_data.parameters).encode(), JSON
        try:
            async with self._session.request(method, url, data=data, headers=headers,
                                             timeout=timeout) as answer:
                return answer.status, await answer.read()
        except TimeoutError as error:  # aiohttp's own timeouts are TimeoutErrors too
            raise TimedOut from error
        except aiohttp.ClientError as error:
            # The class name, as PTB's HTTPXRequest gives it: some errors have no message.
            raise NetworkError(f"aiohttp.{type(error).__name__}: {_without_url(error)}") from error

    def _timeout(self, read: Any, write: Any, connect: Any, pool: Any, *,
                 media: bool) -> aiohttp.ClientTimeout:
        read = self._read_timeout if isinstance(read, DefaultValue) else read
        write = (MEDIA_WRITE if media else WRITE) if isinstance(write, DefaultValue) else write
        connect = CONNECT if isinstance(connect, DefaultValue) else connect
        pool = POOL_WAIT if isinstance(pool, DefaultValue) else pool
        key = (read, write, connect, pool)
        timeout = self._timeouts.get(key)
        if timeout is None:  # a handful of combinations, built once each
            timeout = self._timeouts[key] = aiohttp.ClientTimeout(
                total=None if read is None else read + (write or 0.0),
                connect=None if connect is None else connect + (pool or 0.0),
                sock_read=read)
        return timeout


def _form(request_data: RequestData, files: dict[str, Any]) -> aiohttp.FormData:
    """A multipart body: the parameters as fields, each upload as (filename, bytes, type)."""
    form = aiohttp.FormData()
    for name, value in request_data.json_parameters.items():
        if name not in files:
            form.add_field(name, value)
    for name, (filename, content, mimetype) in files.items():
        form.add_field(name, content, filename=filename, content_type=mimetype)
    return form


def _without_url(error: aiohttp.ClientError) -> str:
    """The error's words without the request's URL, which holds the bot token."""
    if isinstance(error, aiohttp.ClientResponseError):
        return f"{error.status} {error.message}"
    return str(error)
