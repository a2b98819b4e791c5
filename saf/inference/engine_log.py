"""The engine's own timings as llama.cpp writes them in its log, one block per request:

    llama_perf_context_print: prompt eval time =      12.34 ms /    10 tokens (...)
    llama_perf_context_print:        eval time =      56.78 ms /    31 runs   (...)

(`eval` is the generated tokens after the first; llama-cpp-python's server and llama-server
both print it). Read as untrusted text: lines that do not parse are skipped.
"""

from __future__ import annotations

import math
import re

_LINE = re.compile(r"llama_perf_context_print:\s*(prompt eval|eval|total|load) time\s*=\s*"
                   r"([0-9.]+)\s*ms(?:\s*/\s*([0-9]+)\s*(?:tokens|runs))?")


def perf_blocks(lines: list[str]) -> list[dict[str, float]]:
    """One dict per request block: prompt_ms, prompt_n, eval_ms, eval_n, total_ms."""
    blocks: list[dict[str, float]] = []
    current: dict[str, float] = {}
    for line in lines:
        match = _LINE.search(line)
        if not match:
            continue
        what, ms, count = match.group(1), float(match.group(2)), match.group(3)
        if not math.isfinite(ms) or ms < 0:
            continue
        key = {"prompt eval": "prompt", "eval": "eval", "total": "total", "load": "load"}[what]
        if key in ("load", "prompt") and current and ("eval_ms" in current
                                                      or "prompt_ms" in current):
            blocks.append(current)
            current = {}
        current[f"{key}_ms"] = ms
        if count is not None:
            current[f"{key}_n"] = float(count)
        if key == "total":
            blocks.append(current)
            current = {}
    if current:
        blocks.append(current)
    return [b for b in blocks if "eval_ms" in b]


def summarize(blocks: list[dict[str, float]]) -> dict[str, float]:
    """The last blocks averaged, in the names saf shows beside its own figures: prompt_ms
    (time to the first token as the engine counts it), predicted_per_token_ms and
    predicted_per_second (generation alone)."""
    out: dict[str, float] = {}
    prompt = [b["prompt_ms"] for b in blocks if "prompt_ms" in b]
    if prompt:
        out["prompt_ms"] = sum(prompt) / len(prompt)
    per_token = [b["eval_ms"] / b["eval_n"] for b in blocks if b.get("eval_n")]
    if per_token:
        out["predicted_per_token_ms"] = sum(per_token) / len(per_token)
        out["predicted_per_second"] = 1000 / out["predicted_per_token_ms"] \
            if out["predicted_per_token_ms"] > 0 else 0.0
    counts = [b["eval_n"] for b in blocks if "eval_n" in b]
    if counts:
        out["predicted_n"] = sum(counts) / len(counts)
    return out
