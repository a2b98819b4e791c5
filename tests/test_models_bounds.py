"""`saf models check` against engines that never finish: fake engines as real HTTP servers on
loopback (raw asyncio) that send keep-alive comments forever, tokens forever, nothing at all,
or one endless line. Each check ends by its deadline or size limit with the request failed;
before saf.http_read each ran until killed (issue 22, item 10)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from saf.errors import RayError
from saf.inference import measure
from saf.ray.dashboard import Dashboard

MODELS = json.dumps({"object": "list", "data": [{"id": "fake", "object": "model"}]}).encode()
CHUNK = json.dumps({"choices": [{"text": "tok", "index": 0, "finish_reason": None}]})

Stream = Callable[[asyncio.StreamWriter, dict[str, int]], Awaitable[None]]


async def _comments(writer: asyncio.StreamWriter, sent: dict[str, int]) -> None:
    while True:
        writer.write(b": keep-alive\n\n")
        sent["bytes"] += 14
        await writer.drain()
        await asyncio.sleep(0.005)


async def _tokens(writer: asyncio.StreamWriter, sent: dict[str, int]) -> None:
    line = f"data: {CHUNK}\n\n".encode()
    while True:
        writer.write(line)
        sent["bytes"] += len(line)
        await writer.drain()
        await asyncio.sleep(0)


async def _nothing(writer: asyncio.StreamWriter, sent: dict[str, int]) -> None:
    await asyncio.sleep(3600)


async def _endless_line(writer: asyncio.StreamWriter, sent: dict[str, int]) -> None:
    writer.write(b"data: ")
    block = b"x" * 65536
    while True:
        writer.write(block)
        sent["bytes"] += len(block)
        await writer.drain()


@pytest.fixture
async def engine() -> AsyncIterator[Callable[[Stream, bool], Awaitable[tuple[str, dict]]]]:
    """Start a fake engine: GET /v1/models answers (unless `silent`), POST streams `stream`."""
    servers: list[asyncio.Server] = []
    tasks: set[asyncio.Task] = set()

    async def start(stream: Stream, silent: bool = False) -> tuple[str, dict[str, int]]:
        sent = {"bytes": 0}

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            tasks.add(asyncio.current_task())  # type: ignore[arg-type]
            try:
                while True:
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = 0
                    for line in head.split(b"\r\n"):
                        if line.lower().startswith(b"content-length:"):
                            length = int(line.split(b":")[1])
                    await reader.readexactly(length)
                    if silent:
                        await _nothing(writer, sent)
                    if head.startswith(b"GET /v1/models"):
                        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                     b"Content-Length: %d\r\n\r\n" % len(MODELS) + MODELS)
                        await writer.drain()
                        continue
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                                 b"Connection: close\r\n\r\n")
                    await stream(writer, sent)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}", sent

    yield start
    for task in tasks:
        task.cancel()
    for server in servers:
        server.close()


async def _check(url: str, **kw) -> measure.CheckReport:
    # The outer wait is the test's own guard: before the fix these checks never ended.
    return await asyncio.wait_for(measure.check_url(url, "fake:1", **kw), 60)


async def test_keepalive_comments_forever_end_at_the_deadline(engine):
    url, _ = await engine(_comments)
    report = await _check(url, requests=2, concurrency=2, timeout=1.5)
    assert report.failed == 2
    assert report.errors() == ["not answered within the check's deadline"]


async def test_nothing_at_all_ends_at_the_deadline(engine):
    url, _ = await engine(_nothing)
    report = await _check(url, timeout=1.5)
    assert report.failed == 1
    assert "deadline" in report.errors()[0]


async def test_a_silent_server_fails_the_models_request_at_the_deadline(engine):
    url, _ = await engine(_nothing, True)
    with pytest.raises(httpx.TimeoutException, match="within 1.5 s"):
        await _check(url, timeout=1.5)


async def test_tokens_forever_stop_past_what_was_asked(engine):
    url, sent = await engine(_tokens)
    report = await _check(url, max_tokens=8, timeout=120)
    assert report.failed == 1
    assert "ignores it" in report.errors()[0]
    assert report.bad.counts["too_many_chunks"] == 1


async def test_one_endless_line_is_cut_at_the_line_limit(engine):
    url, sent = await engine(_endless_line)
    report = await _check(url, timeout=120)
    assert report.failed == 1
    assert report.errors() == [f"a line longer than {measure.LINE_LIMIT} bytes"]
    assert report.bad.counts["too_long"] == 1
    # saf stopped reading at the limit: what the engine got out is the limit plus what the
    # sockets' buffers hold, not the gigabytes it would have sent.
    assert sent["bytes"] < measure.LINE_LIMIT + 32 * 1024 * 1024


async def test_the_ray_dashboard_is_read_within_its_deadline_and_limit(engine):
    url, _ = await engine(_nothing, True)
    dashboard = Dashboard(url, deadline=1.0)
    try:
        with pytest.raises(RayError, match="within 1 s"):
            await asyncio.wait_for(dashboard.version(), 60)
    finally:
        await dashboard.close()
