"""`saf models check`'s measurements: streamed completions timed as `vllm bench serve` times
them, over HTTP to an endpoint (saf reaches it through an SSH forward).

For each request: ttft (time to the first token-bearing chunk), itl (the gaps between
token-bearing chunks), e2el (end to end), and tpot ((e2el - ttft) / (output tokens - 1)).
Output tokens are the server's `usage.completion_tokens` when it reports them, else the
number of token-bearing chunks. Over a run: each metric's mean, p50, p90 and p99 (numpy's
linear percentiles, as vLLM's benchmark), output tokens per second and requests per second.
Everything the server sends is checked (saf.inference.sse); what is not valid is counted.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from saf.defaults import MODEL_CHECK_DEADLINE
from saf.inference.records import BadLines
from saf.inference.sse import MAX_EVENT, Chunk, ModelInfo, SSEReader, read_chunk, read_models

if TYPE_CHECKING:  # httpx is imported where a request is made, once the node has answered:
    from saf.http_read import httpx  # saf status and saf models read this module before that

PROMPT = "The quick brown fox jumps over the lazy dog. Tell me a story about a"
METRICS = ("ttft", "tpot", "itl", "e2el")
PERCENTILES = (50, 90, 99)
# What one answer may hold. A line is at most one event's data and its name; /v1/models lists
# a few models (vLLM's answer for one is about 500 bytes); the text kept is for a person to
# read, not measured; chunks past twice what was asked for (plus the role, usage and finish
# chunks some engines add) mean the server ignores max_tokens.
LINE_LIMIT = MAX_EVENT + 1024
MODELS_LIMIT = 4 * 1024 * 1024
TEXT_LIMIT = 64 * 1024
DEADLINE = MODEL_CHECK_DEADLINE  # seconds for a whole check of one endpoint


def chunk_limit(max_tokens: int) -> int:
    return 2 * max_tokens + 16


@dataclass
class RequestResult:
    ok: bool
    error: str = ""
    ttft: float | None = None  # seconds
    itl: list[float] = field(default_factory=list)
    e2el: float | None = None
    output_tokens: int = 0
    prompt_tokens: int | None = None
    chunks: int = 0
    timings: dict[str, float] | None = None  # the engine's own, when it sends them
    text: str = ""

    @property
    def tpot(self) -> float | None:
        if self.ttft is None or self.e2el is None or self.output_tokens < 2:
            return None
        return (self.e2el - self.ttft) / (self.output_tokens - 1)


def percentile(values: Sequence[float], q: float) -> float:
    """numpy.percentile's default (linear) of a non-empty sequence."""
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Stats:
    """One metric over a run, in milliseconds."""

    mean: float
    p50: float
    p90: float
    p99: float
    n: int

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Stats | None:
        if not seconds:
            return None
        ms = [s * 1000 for s in seconds]
        p50, p90, p99 = (percentile(ms, q) for q in PERCENTILES)
        return cls(sum(ms) / len(ms), p50, p90, p99, len(ms))

    def to_json(self) -> dict[str, float]:
        return {"mean": self.mean, "p50": self.p50, "p90": self.p90, "p99": self.p99,
                "n": self.n}


@dataclass
class CheckReport:
    endpoint: str  # node:port
    model: str
    models: list[ModelInfo]
    requests: int
    concurrency: int
    max_tokens: int
    duration: float  # seconds, first request sent to last answer
    results: list[RequestResult]
    bad: BadLines
    engine: dict[str, float] | None = None  # the engine's own timings (see engine_timings)
    engine_source: str = ""
    at: float = field(default_factory=time.time)

    @property
    def completed(self) -> list[RequestResult]:
        return [r for r in self.results if r.ok]

    @property
    def failed(self) -> int:
        return len(self.results) - len(self.completed)

    def stats(self) -> dict[str, Stats | None]:
        done = self.completed
        return {
            "ttft": Stats.of([r.ttft for r in done if r.ttft is not None]),
            "tpot": Stats.of([t for r in done if (t := r.tpot) is not None]),
            "itl": Stats.of([gap for r in done for gap in r.itl]),
            "e2el": Stats.of([r.e2el for r in done if r.e2el is not None]),
        }

    @property
    def output_tokens(self) -> int:
        return sum(r.output_tokens for r in self.completed)

    @property
    def tokens_per_s(self) -> float | None:
        """Output tokens per second over the run (vLLM's 'output token throughput')."""
        return self.output_tokens / self.duration if self.duration > 0 and self.completed \
            else None

    @property
    def requests_per_s(self) -> float | None:
        return len(self.completed) / self.duration if self.duration > 0 and self.completed \
            else None

    def errors(self) -> list[str]:
        return sorted({r.error for r in self.results if not r.ok})

    def to_json(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint, "model": self.model, "at": self.at,
            "requests": self.requests, "concurrency": self.concurrency,
            "max_tokens": self.max_tokens, "completed": len(self.completed),
            "failed": self.failed, "duration": self.duration,
            "output_tokens": self.output_tokens, "tokens_per_s": self.tokens_per_s,
            "requests_per_s": self.requests_per_s,
            **{name: (s.to_json() if s else None) for name, s in self.stats().items()},
            "engine": self.engine, "engine_source": self.engine_source,
            "bad": dict(self.bad.counts), "errors": self.errors(),
        }


async def get_models(client: httpx.AsyncClient, bad: BadLines) -> list[ModelInfo]:
    from saf import http_read
    from saf.http_read import httpx

    answer = await http_read.request(client, "GET", "/v1/models", limit=MODELS_LIMIT)
    if answer.status != 200:
        raise httpx.HTTPError(f"GET /v1/models answered {answer.status}: "
                              f"{http_read.excerpt(answer.body)}")
    try:
        data = json.loads(answer.body)
    except ValueError:
        bad.add("bad_models")
        return []
    return read_models(data, bad)


def completion_body(model: str, max_tokens: int, prompt: str = PROMPT) -> dict[str, Any]:
    """The request every engine is sent: a streamed completion of a fixed prompt, all
    `max_tokens` generated (ignore_eos), usage in the last chunk."""
    return {"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
            "stream": True, "ignore_eos": True, "stream_options": {"include_usage": True}}


async def one_request(client: httpx.AsyncClient, body: dict[str, Any],
                      bad: BadLines) -> RequestResult:
    """One streamed completion, timed chunk by chunk."""
    from saf import http_read
    from saf.http_read import httpx

    result = RequestResult(ok=False)
    stream = _Stream(sent=time.perf_counter())
    try:
        async with client.stream("POST", "/v1/completions", json=body) as answer:
            if answer.status_code != 200:
                text = http_read.excerpt(await http_read.head(answer, 300))
                result.error = f"HTTP {answer.status_code}: {text}"
                return result
            if not await _read_chunks(answer, body, result, stream, bad):
                return result
    except http_read.TooLarge as exc:
        bad.add("too_long")
        result.error = str(exc)
        return result
    except httpx.HTTPError as exc:
        result.error = f"{type(exc).__name__}: {exc}"[:300]
        return result
    return _finish(result, stream, bad)


@dataclass
class _Stream:
    """What one_request follows across the chunks of one streamed answer."""

    sent: float  # perf_counter when the request went
    last: float = 0.0  # perf_counter of the last chunk with text
    usage_tokens: int | None = None  # the engine's own count, when it gave one
    token_chunks: int = 0  # chunks with text
    finished: bool = False  # a chunk carried a finish_reason

    def take(self, result: RequestResult, chunk: Chunk, now: float) -> None:
        """Add `chunk`, arrived at `now`, to `result` and time it."""
        _take(result, chunk)
        if chunk.completion_tokens is not None:
            self.usage_tokens = chunk.completion_tokens
        self.finished = self.finished or chunk.finish_reason is not None
        if chunk.text:
            if self.token_chunks == 0:
                result.ttft = now - self.sent
            else:
                result.itl.append(now - self.last)
            self.token_chunks += 1
            self.last = now


async def _read_chunks(answer: httpx.Response, body: dict[str, Any], result: RequestResult,
                       stream: _Stream, bad: BadLines) -> bool:
    """Read the answer's chunks into `result`; False (result.error says why) when there are
    more than `body`'s max_tokens allow."""
    from saf import http_read

    reader = SSEReader(bad)
    most = chunk_limit(int(body.get("max_tokens", 0)))
    async for line in http_read.lines(answer, LINE_LIMIT):
        data = reader.line(line)
        if data is None:
            continue
        if reader.done:
            break
        chunk = read_chunk(data, bad)
        if chunk is None:
            continue
        now = time.perf_counter()
        result.chunks += 1
        if result.chunks > most:
            bad.add("too_many_chunks")
            result.error = (f"more than {most} chunks for max_tokens "
                            f"{body.get('max_tokens')}: the server ignores it")
            return False
        stream.take(result, chunk, now)
    tail = reader.close()
    if tail is not None and not reader.done:
        chunk = read_chunk(tail, bad)
        if chunk is not None:
            _take(result, chunk)
    return True


def _finish(result: RequestResult, stream: _Stream, bad: BadLines) -> RequestResult:
    """The whole answer read: its duration and tokens, ok unless it had no tokens or was
    cut short."""
    result.e2el = time.perf_counter() - stream.sent
    result.output_tokens = stream.usage_tokens if stream.usage_tokens is not None \
        else stream.token_chunks
    if stream.token_chunks == 0:
        result.error = "no tokens in the answer"
        return result
    if not stream.finished:
        # Every engine ends a whole answer with a finish_reason (stop, length); a stream
        # that ends without one was cut short (llama-cpp-python's server interrupts a
        # stream when another request comes, unless started with --interrupt_requests False).
        bad.add("cut_short")
        result.error = "the stream ended without a finish_reason (cut short by the server)"
        return result
    result.ok = True
    return result


def _take(result: RequestResult, chunk: Chunk) -> None:
    if len(result.text) < TEXT_LIMIT:
        result.text = (result.text + chunk.text)[:TEXT_LIMIT]
    if chunk.prompt_tokens is not None:
        result.prompt_tokens = chunk.prompt_tokens
    if chunk.timings is not None:
        result.timings = chunk.timings


async def run_requests(client: httpx.AsyncClient, body: dict[str, Any], requests: int,
                       concurrency: int, bad: BadLines,
                       deadline: float | None = None) -> tuple[list[RequestResult], float]:
    """`requests` requests, at most `concurrency` at once; (results, wall seconds). A request
    not answered whole by `deadline` (the loop's clock) fails: a server that sends keep-alive
    comments or tokens forever, or trickles a byte at a time, never ends a check otherwise."""
    gate = asyncio.Semaphore(concurrency)

    async def one() -> RequestResult:
        try:
            async with asyncio.timeout_at(deadline):
                async with gate:
                    return await one_request(client, body, bad)
        except TimeoutError:
            return RequestResult(ok=False, error="not answered within the check's deadline")

    began = time.perf_counter()
    results = await asyncio.gather(*(one() for _ in range(requests)))
    return list(results), time.perf_counter() - began


async def check_url(base_url: str, endpoint: str, *, requests: int = 1, concurrency: int = 1,
                    max_tokens: int = 32, model: str | None = None,
                    timeout: float = DEADLINE) -> CheckReport:  # noqa: ASYNC109 - ends with what came by then, where asyncio.timeout would raise
    """GET /v1/models, then `requests` streamed completions; the report. `timeout` is the
    whole check's deadline: requests unanswered by then fail, and the report is what came."""
    from saf.http_read import httpx

    bad = BadLines()
    limits = httpx.Limits(max_connections=max(concurrency, 1) + 1)
    deadline = asyncio.get_running_loop().time() + timeout
    async with httpx.AsyncClient(base_url=base_url, timeout=timeout, limits=limits,
                                 trust_env=False) as client:
        try:
            async with asyncio.timeout_at(deadline):
                models = await get_models(client, bad)
        except TimeoutError:
            raise httpx.TimeoutException(
                f"GET /v1/models not answered within {timeout:g} s") from None
        name = model or (models[0].id if models else "")
        if not name:
            raise httpx.HTTPError("GET /v1/models listed no model")
        body = completion_body(name, max_tokens)
        results, duration = await run_requests(client, body, requests, concurrency, bad,
                                               deadline)
    report = CheckReport(endpoint, name, models, requests, concurrency, max_tokens, duration,
                         results, bad)
    timed = [r.timings for r in report.completed if r.timings]
    if timed:
        report.engine, report.engine_source = response_timings(timed), "response timings"
    return report


def response_timings(timings: list[dict[str, float]]) -> dict[str, float]:
    """llama-server's per-response `timings`, averaged: its own prompt time (prompt_ms, which
    is most of the ttft), time per output token (predicted_per_token_ms) and output tokens
    per second (predicted_per_second)."""
    out: dict[str, float] = {}
    for key in ("prompt_ms", "predicted_per_token_ms", "predicted_per_second", "predicted_n",
                "prompt_n"):
        values = [t[key] for t in timings if key in t]
        if values:
            out[key] = sum(values) / len(values)
    return out


def dumps(report: CheckReport) -> str:
    return json.dumps(report.to_json())
