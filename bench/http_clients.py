"""The CPU one Bot API call costs the bot, by HTTP client: why `telegram_http` uses aiohttp.

Run from the repository root (about a minute):

    .venv/bin/python bench/http_clients.py [--calls 4000] [--concurrency 20]

A minimal HTTP/1.1 server in a process of its own answers every POST with a sendMessage result
at once, so what this process spends is the client's alone. Each client sends the same
sendMessage `--calls` times, `--concurrency` at a time over keep-alive connections, and the
figure is this process's CPU time per call:

- raw: asyncio streams writing the request and reading the answer by Content-Length (the
  baseline: about the least any client can spend);
- httpx and aiohttp: a bare POST of the JSON body;
- PTB + HTTPXRequest (python-telegram-bot's default) and PTB + AiohttpRequest (`telegram_http`):
  `Bot.send_message`, building the request and parsing the answer into a Message as the bot does.

Prints CPU ms per call and the ratio to raw, and writes bench/results/http_clients.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import httpx  # noqa: E402
from telegram import Bot  # noqa: E402
from telegram.request import HTTPXRequest  # noqa: E402

from telegram_http import AiohttpRequest  # noqa: E402

TOKEN = "123456:BENCH"
SERVER = r"""
import asyncio, json, sys
body = json.dumps({"ok": True, "result": {"message_id": 1, "date": 0, "text": "hi",
    "chat": {"id": 1, "type": "private", "first_name": "A"}}}).encode()
answer = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
          + str(len(body)).encode() + b"\r\n\r\n" + body)
async def serve(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            writer.write(answer)
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()
async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()
asyncio.run(main())
"""
PAYLOAD = {"chat_id": 1, "text": "<b>SoftBank</b> buys a data centre", "parse_mode": "HTML"}


async def _run(calls: int, concurrency: int, call: Callable[[], Awaitable[object]]) -> float:
    """CPU seconds per call for `calls` calls, `concurrency` in flight at a time."""
    remaining = min(calls, 200)  # warm up: connections opened, code paths run once

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await call()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    remaining = calls
    start = time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return (time.process_time() - start) / calls


async def _raw(port: int, calls: int, concurrency: int) -> float:
    body = json.dumps(PAYLOAD).encode()
    request = (f"POST /bot{TOKEN}/sendMessage HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
               ).encode() + body
    free: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def call() -> None:
        reader, writer = free.pop() if free else await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        json.loads(await reader.readexactly(length))
        free.append((reader, writer))

    result = await _run(calls, concurrency, call)
    for _, writer in free:
        writer.close()
    return result


async def _httpx(port: int, calls: int, concurrency: int) -> float:
    async with httpx.AsyncClient() as client:
        url = f"http://127.0.0.1:{port}/bot{TOKEN}/sendMessage"
        return await _run(calls, concurrency, lambda: client.post(url, json=PAYLOAD))


async def _aiohttp(port: int, calls: int, concurrency: int) -> float:
    async with aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{port}/bot{TOKEN}/sendMessage"

        async def call() -> None:
            async with session.post(url, json=PAYLOAD) as answer:
                await answer.read()

        return await _run(calls, concurrency, call)


async def _ptb(port: int, calls: int, concurrency: int, request: object) -> float:
    bot = Bot(TOKEN, base_url=f"http://127.0.0.1:{port}/bot", request=request)  # type: ignore[arg-type]
    await bot.request.initialize()  # getMe is not answered by this server
    try:
        return await _run(calls, concurrency, lambda: bot.send_message(
            1, PAYLOAD["text"], parse_mode="HTML"))
    finally:
        await bot.request.shutdown()


async def measure(port: int, calls: int, concurrency: int) -> dict[str, float]:
    return {
        "raw": await _raw(port, calls, concurrency),
        "httpx": await _httpx(port, calls, concurrency),
        "aiohttp": await _aiohttp(port, calls, concurrency),
        "ptb+httpx": await _ptb(port, calls, concurrency,
                                HTTPXRequest(connection_pool_size=256)),
        "ptb+aiohttp": await _ptb(port, calls, concurrency, AiohttpRequest()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        figures = asyncio.run(measure(port, args.calls, args.concurrency))
    finally:
        server.kill()
    print(f"{args.calls} calls, {args.concurrency} at a time; CPU of this process per call")
    for name, seconds in figures.items():
        print(f"  {name:12} {seconds * 1000:7.3f} ms  {seconds / figures['raw']:6.2f}x raw")
    out = ROOT / "bench" / "results" / "http_clients.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"calls": args.calls, "concurrency": args.concurrency,
                               "cpu_ms_per_call": {k: v * 1000 for k, v in figures.items()}},
                              indent=2) + "\n")


if __name__ == "__main__":
    main()
