"""Every HTTP read from a node, bounded in size (and, by its caller, in time).

A node's HTTP server (a model engine, the Ray dashboard) is untrusted: it may send one endless
line, a body of any size, or keep a stream alive forever with keep-alive comments. httpx's
own `aiter_lines` and `Response.json()` keep whatever arrives, so saf never uses them on a
node's answer: `lines` yields lines of at most `limit` bytes and `body` reads at most `limit`
bytes, each raising `TooLarge` past it. Time is the caller's: each wraps its whole exchange in
`asyncio.timeout` (an overall deadline; httpx's own timeout only bounds the gap between two
reads, which a server trickling bytes never exceeds).

saf imports httpx here only (ruff's TID251 refuses `import httpx` elsewhere: the others write
`from saf.http_read import httpx`), without its command-line client: httpx's `__init__`
imports `httpx._main` whenever click, Rich and Pygments are installed, as they are beside saf,
and that drew in Rich's console and progress bars and Pygments' lexers before every command
that reads HTTP from a node (`saf status`, `saf models`, `saf ray ...`, `saf doctor`) made its
first connection: 50 ms of its 0.15 s on a loaded 2-core machine (`python -X importtime`;
tests/perf/bench_cli.py). saf never runs httpx's CLI; with `httpx._main` unimportable while
httpx loads, httpx binds its own stand-in `main`, and every other name is the same.
"""

from __future__ import annotations

import re
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

CLI = "httpx._main"


def _import_httpx() -> None:
    if "httpx" in sys.modules:
        return
    sys.modules[CLI] = None  # type: ignore[assignment]  # None: its import raises ImportError
    try:
        import httpx  # noqa: F401, TID251 - the one import, without CLI
    finally:
        if CLI in sys.modules and sys.modules[CLI] is None:
            del sys.modules[CLI]  # a later `import httpx._main` imports it for real


_import_httpx()

import httpx  # noqa: E402, TID251 - imported above; this binds the name

__all__ = ["TooLarge", "body", "head", "httpx", "lines", "request"]

_EOL = re.compile(rb"\r\n|\r|\n")  # SSE (and HTTP bodies people read) end lines all three ways


class TooLarge(httpx.HTTPError):
    """A line or body past its limit: the server is not answering sanely. An httpx error, so
    every caller that handles a failed request handles this one too."""

    def __init__(self, what: str, limit: int) -> None:
        super().__init__(f"{what} longer than {limit} bytes")
        self.what, self.limit = what, limit


async def lines(response: httpx.Response, limit: int) -> AsyncIterator[str]:
    """The response's lines (UTF-8, bad bytes replaced, without their ends), each at most
    `limit` bytes; `TooLarge` as soon as a line passes it, before it is kept whole."""
    pending = bytearray()
    async for chunk in response.aiter_bytes():
        scan = max(len(pending) - 1, 0)  # a "\r" kept back may begin a "\r\n"
        pending += chunk
        while (end := _EOL.search(pending, scan)) is not None:
            if end.group() == b"\r" and end.end() == len(pending):
                break  # wait for the next chunk: it may start with "\n"
            yield pending[:end.start()].decode("utf-8", "replace")
            del pending[:end.end()]
            scan = 0
        if len(pending) > limit:
            raise TooLarge("a line", limit)
    if pending:
        yield pending.rstrip(b"\r").decode("utf-8", "replace")


async def body(response: httpx.Response, limit: int) -> bytes:
    """The whole body of a streamed response, at most `limit` bytes (else `TooLarge`)."""
    kept = bytearray()
    async for chunk in response.aiter_bytes():
        kept += chunk
        if len(kept) > limit:
            raise TooLarge("the answer", limit)
    return bytes(kept)


@dataclass(frozen=True)
class Answer:
    """One whole answer: its status, what it says its body is, and the body (bounded)."""

    status: int
    content_type: str
    body: bytes


async def request(client: httpx.AsyncClient, method: str, url: str, *, limit: int,
                  **kw: Any) -> Answer:
    """One request's answer, the body read through `body`."""
    async with client.stream(method, url, **kw) as response:
        return Answer(response.status_code, response.headers.get("content-type", ""),
                      await body(response, limit))


async def head(response: httpx.Response, size: int) -> bytes:
    """The first `size` bytes of a body (an error page to quote), the rest left unread."""
    kept = bytearray()
    async for chunk in response.aiter_bytes():
        kept += chunk
        if len(kept) >= size:
            break
    return bytes(kept[:size])


def excerpt(data: bytes, size: int = 300) -> str:
    """The start of a body for a message: at most `size` characters, whitespace folded."""
    return " ".join(data[:size].decode("utf-8", "replace").split())
