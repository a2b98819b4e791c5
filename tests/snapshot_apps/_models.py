"""The cockpit with the Models screen on a fixed set of endpoints at a fixed moment: the
cluster of issue 13 (vLLM on an RTX 3090 box, mlx_lm.server on a Mac mini, llama.cpp on a
MacBook), one loading, one exited, and last checks of two of them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from saf.screens.app import SafApp

from saf.inference.checks import SavedCheck
from saf.inference.checks import read as read_checks
from saf.inference.cluster import ClusterServers
from saf.inference.measure import CheckReport
from saf.inference.node import Started
from saf.inference.records import Endpoint
from tests.snapshot_apps._common import cockpit

NOW = 1_790_000_000.0


def _stats(mean: float, p50: float, p90: float, p99: float, n: int) -> dict[str, float]:
    return {"mean": mean, "p50": p50, "p90": p90, "p99": p99, "n": n}


ENDPOINTS = [
    Endpoint("gamma", 8000, "vllm", "Qwen/Qwen2.5-7B-Instruct", "ready", 41233, 7265.0,
             log="/home/ai/.saf/serve/8000.log", started=NOW - 7265,
             argv=("vllm", "serve", "Qwen/Qwen2.5-7B-Instruct", "--port", "8000")),
    Endpoint("alpha", 8001, "mlx", "mlx-community/Llama-3.2-3B-Instruct-4bit", "ready", 5120,
             86_500.0, log="/Users/ai/.saf/serve/8001.log", started=NOW - 86_500),
    Endpoint("beta", 8002, "llama-server", "/Volumes/ai-models/qwen2.5-7b-q4_k_m.gguf",
             "loading", 912, 14.0, log="/Users/ai/.saf/serve/8002.log", started=NOW - 14),
    Endpoint("beta", 8003, "llama-server", "/Volumes/ai-models/phi-3-mini-q4.gguf", "exited",
             2210, None, log="/Users/ai/.saf/serve/8003.log", started=NOW - 4000),
]

CHECKS: dict[str, dict[str, Any]] = {
    "gamma:8000": {
        "endpoint": "gamma:8000", "model": "Qwen/Qwen2.5-7B-Instruct", "at": NOW - 125,
        "requests": 16, "concurrency": 4, "max_tokens": 128, "completed": 16, "failed": 0,
        "duration": 9.8, "output_tokens": 2048, "tokens_per_s": 208.9, "requests_per_s": 1.63,
        "ttft": _stats(41.2, 38.5, 55.1, 71.9, 16), "tpot": _stats(17.9, 17.6, 19.0, 20.4, 16),
        "itl": _stats(17.9, 17.2, 19.8, 31.0, 2032), "e2el": _stats(2315, 2290, 2410, 2480, 16),
        "engine": None, "engine_source": "", "bad": {}, "errors": [],
    },
    "alpha:8001": {
        "endpoint": "alpha:8001", "model": "mlx-community/Llama-3.2-3B-Instruct-4bit",
        "at": NOW - 3600, "requests": 4, "concurrency": 1, "max_tokens": 64, "completed": 4,
        "failed": 0, "duration": 2.9, "output_tokens": 256, "tokens_per_s": 88.3,
        "requests_per_s": 1.38, "ttft": _stats(92.0, 90.1, 101.3, 104.0, 4),
        "tpot": _stats(10.0, 9.9, 10.4, 10.6, 4), "itl": _stats(10.0, 9.8, 10.9, 14.2, 252),
        "e2el": _stats(722, 718, 741, 748, 4), "engine": None, "engine_source": "",
        "bad": {"no_choices": 1}, "errors": [],
    },
}


class FixedModels:
    """A ModelsSource that answers from the lists above and changes nothing."""

    def now(self) -> float:
        return NOW

    async def endpoints(self) -> ClusterServers:
        return ClusterServers(list(ENDPOINTS), {}, )

    def last_checks(self) -> Mapping[str, SavedCheck]:
        return read_checks(CHECKS)

    async def check(self, endpoint: Endpoint) -> CheckReport:
        raise RuntimeError("the snapshot source measures nothing")

    async def stop(self, endpoint: Endpoint) -> Endpoint | None:
        return None

    async def restart(self, endpoint: Endpoint) -> Started:
        return Started("failed", why="the snapshot source starts nothing")

    async def logs(self, endpoint: Endpoint, lines: int) -> tuple[str, list[str]]:
        return endpoint.log, ["INFO:     Started server process [41233]",
                              "INFO:     Application startup complete."]


def make_models_app() -> SafApp:
    """The cockpit on a recording, with the fixed models source; press 6 for Models."""
    return cockpit("healthy-3-nodes.jsonl", models=FixedModels())


class NoModels(FixedModels):
    """A ModelsSource of a cluster where saf has started no model server yet."""

    async def endpoints(self) -> ClusterServers:
        return ClusterServers([], {})

    def last_checks(self) -> Mapping[str, SavedCheck]:
        return {}


def make_empty_models_app() -> SafApp:
    """The cockpit on a recording, no model server started; press 6 for Models."""
    return cockpit("healthy-3-nodes.jsonl", models=NoModels())
