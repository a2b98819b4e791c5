"""Benchmark: `saf models check`'s measuring against a bare httpx streaming loop (the floor)
and the engine's own timings, on the same requests to the same real engine.

The engine is llama.cpp through llama-cpp-python's OpenAI-compatible server, serving the
tiny GGUF model the tests write (tests/helpers/tiny_gguf.py), started on loopback. Requests
alternate saf / bare, one at a time, so both see the same engine in the same state; each is
the same streamed completion of --max-tokens tokens. The engine's own figures are its
`llama_perf_context_print` lines for those requests.

    python tests/perf/bench_models.py [--requests 40] [--max-tokens 64]

Prints, per way of measuring: TTFT, TPOT, e2e latency (means and p50) and decode tokens/s;
then what saf adds per request over the bare loop (target: under 1 ms): the time to read one
recorded answer through saf's SSE reader and chunk checks against the bare loop's string
test, and the live call-to-call difference; and how far saf's figures are from the bare
loop's (target: under 5 %).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from saf.inference.engine_log import perf_blocks, summarize  # noqa: E402
from saf.inference.measure import completion_body, one_request  # noqa: E402
from saf.inference.records import BadLines  # noqa: E402
from saf.inference.sse import SSEReader, read_chunk  # noqa: E402
from tests.helpers.servers import free_port  # noqa: E402
from tests.helpers.tiny_gguf import write_tiny_llama  # noqa: E402


async def bare(client: httpx.AsyncClient, body: dict) -> tuple[float, float, int]:
    """The floor: stream, note the first data line's and the last one's time. (ttft, e2e,
    data lines with text)."""
    sent = time.perf_counter()
    first = None
    tokens = 0
    async with client.stream("POST", "/v1/completions", json=body) as answer:
        async for line in answer.aiter_lines():
            if line.startswith("data: {") and '"text":""' not in line.replace(" ", ""):
                tokens += 1
                if first is None:
                    first = time.perf_counter() - sent
    return first or 0.0, time.perf_counter() - sent, tokens


def line(name: str, ttft: list[float], e2e: list[float], tpot: list[float]) -> str:
    ms = 1000
    return (f"{name:<22} ttft mean {statistics.mean(ttft) * ms:7.2f} ms  p50 "
            f"{statistics.median(ttft) * ms:7.2f} ms | tpot {statistics.mean(tpot) * ms:6.3f} ms"
            f" ({1 / statistics.mean(tpot):7.1f} tok/s) | e2e mean "
            f"{statistics.mean(e2e) * ms:7.2f} ms  p50 {statistics.median(e2e) * ms:7.2f} ms")


async def recorded(base: str, max_tokens: int) -> list[str]:
    """One answer's lines as the engine sent them, to time the reading alone."""
    async with httpx.AsyncClient(base_url=base, timeout=60, trust_env=False) as client:
        async with client.stream("POST", "/v1/completions",
                                 json=completion_body("tiny", max_tokens)) as answer:
            return [line async for line in answer.aiter_lines()]


def reading_cost(lines: list[str], rounds: int = 2000) -> tuple[float, float]:
    """Seconds per answer to read `lines`: saf's SSE reader and chunk checks, and the bare
    loop's string test. The network and the engine are left out, so this is what saf's
    measuring itself adds to each request, free of the noise of a live server."""
    bad = BadLines()
    began = time.perf_counter()
    for _ in range(rounds):
        reader = SSEReader(bad)
        for line in lines:
            data = reader.line(line)
            if data is not None and not reader.done:
                read_chunk(data, bad)
    saf = (time.perf_counter() - began) / rounds
    began = time.perf_counter()
    for _ in range(rounds):
        tokens = 0
        for line in lines:
            if line.startswith("data: {") and '"text":""' not in line.replace(" ", ""):
                tokens += 1
    floor = (time.perf_counter() - began) / rounds
    return saf, floor


async def bench(base: str, requests: int, max_tokens: int) -> dict:
    body = completion_body("tiny", max_tokens)
    bad = BadLines()
    saf_ttft, saf_e2e, saf_tpot, saf_wall = [], [], [], []
    bare_ttft, bare_e2e, bare_tpot = [], [], []
    async with httpx.AsyncClient(base_url=base, timeout=60, trust_env=False) as client:
        for _ in range(3):  # warm the engine and the connection
            await one_request(client, body, bad)
            await bare(client, body)
        for i in range(requests):
            order = ("saf", "bare") if i % 2 == 0 else ("bare", "saf")
            for who in order:
                if who == "saf":
                    began = time.perf_counter()
                    r = await one_request(client, body, bad)
                    saf_wall.append(time.perf_counter() - began)
                    if not r.ok or r.ttft is None or r.e2el is None or r.tpot is None:
                        raise SystemExit(f"saf's request failed: {r.error}")
                    saf_ttft.append(r.ttft)
                    saf_e2e.append(r.e2el)
                    saf_tpot.append(r.tpot)
                else:
                    ttft, e2e, tokens = await bare(client, body)
                    bare_ttft.append(ttft)
                    bare_e2e.append(e2e)
                    bare_tpot.append((e2e - ttft) / max(tokens - 1, 1))
    return {"saf": (saf_ttft, saf_e2e, saf_tpot, saf_wall),
            "bare": (bare_ttft, bare_e2e, bare_tpot), "bad": bad.total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=40, help="requests per way (default 40)")
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    try:
        import llama_cpp.server  # noqa: F401
    except ImportError:
        raise SystemExit("needs llama-cpp-python[server] (pip install -e '.[test]')") from None
    with tempfile.TemporaryDirectory(prefix="saf-bench-serving-") as tmp:
        model = write_tiny_llama(Path(tmp) / "tiny.gguf")
        port = free_port()
        log = Path(tmp) / "engine.log"
        engine = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host",
             "127.0.0.1", "--port", str(port), "--n_threads", "1"],
            stdout=log.open("w"), stderr=subprocess.STDOUT, env={**os.environ})
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1).status_code \
                            == 200:
                        break
                except httpx.HTTPError:
                    pass
                if engine.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the engine did not start:\n" + log.read_text()[-2000:])
                time.sleep(0.2)
            skip = len(perf_blocks(log.read_text().splitlines()))
            got = asyncio.run(bench(f"http://127.0.0.1:{port}", args.requests, args.max_tokens))
            blocks = perf_blocks(log.read_text().splitlines())[skip:][-2 * args.requests:]
            lines = asyncio.run(recorded(f"http://127.0.0.1:{port}", args.max_tokens))
        finally:
            engine.terminate()
            engine.wait(10)
    saf_ttft, saf_e2e, saf_tpot, saf_wall = got["saf"]
    bare_ttft, bare_e2e, bare_tpot = got["bare"]
    print(f"llama-cpp-python server, tiny 2-layer GGUF, {args.requests} requests per way, "
          f"{args.max_tokens} tokens each, alternating saf / bare")
    print(line("saf check", saf_ttft, saf_e2e, saf_tpot))
    print(line("bare httpx loop", bare_ttft, bare_e2e, bare_tpot))
    engine = summarize(blocks)
    if engine:
        print(f"{'engine (its own log)':<22} prompt mean {engine.get('prompt_ms', 0):7.2f} ms"
              f"             | tpot {engine['predicted_per_token_ms']:6.3f} ms "
              f"({engine['predicted_per_second']:7.1f} tok/s) | {len(blocks)} requests logged")
    added = (statistics.mean(saf_wall) - statistics.mean(bare_e2e)) * 1000
    saf_read, floor_read = reading_cost(lines)
    print(f"saf adds {(saf_read - floor_read) * 1000:.3f} ms per request over the bare loop "
          f"reading the same {len(lines)}-line answer ({saf_read * 1e6:.0f} us vs "
          f"{floor_read * 1e6:.0f} us; target < 1 ms)")
    print(f"  live, call to call: {added:+.3f} ms (the live difference is within the noise of "
          "a shared machine)")
    # Decode tokens/s is 1 / mean tpot (a mean of reciprocals would be ruled by the one
    # request whose tokens came in a single burst).
    for name, x, y in (("ttft", statistics.mean(saf_ttft), statistics.mean(bare_ttft)),
                       ("e2e", statistics.mean(saf_e2e), statistics.mean(bare_e2e)),
                       ("tokens/s", 1 / statistics.mean(saf_tpot),
                        1 / statistics.mean(bare_tpot))):
        diff = (x - y) / y * 100
        print(f"  {name:<8} saf vs bare: {diff:+.2f} % (target within 5 %)")
    print(f"bad answers counted: {got['bad']}")


if __name__ == "__main__":
    main()
