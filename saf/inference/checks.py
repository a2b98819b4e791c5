"""Each endpoint's last check, kept on the operator's machine (<state>/models/checks-CLUSTER.json)
so `saf models` and the Models screen can show its figures later. Written atomically; a file
that does not read back is treated as empty, and an entry that does not read back as the
SavedCheck below (a figure of the wrong type) as never checked."""

from __future__ import annotations

import json
import re
from pathlib import Path

import msgspec

from saf import paths
from saf.inference.measure import CheckReport

_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def path_for(cluster: str) -> Path:
    return paths.state_dir() / "models" / f"checks-{_SAFE.sub('_', cluster)}.json"


class SavedStats(msgspec.Struct):
    """One metric of a saved check, in milliseconds (measure.Stats.to_json())."""

    mean: float | None = None
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    n: int | None = None


class SavedCheck(msgspec.Struct):
    """An endpoint's last check as saved (CheckReport.to_json(), the same fields in the same
    order): what `saf models` and the Models screen read, by attribute."""

    endpoint: str = ""
    model: str = ""
    at: float | None = None  # epoch seconds
    requests: int | None = None
    concurrency: int | None = None
    max_tokens: int | None = None
    completed: int | None = None
    failed: int | None = None
    duration: float | None = None
    output_tokens: int | None = None
    tokens_per_s: float | None = None
    requests_per_s: float | None = None
    ttft: SavedStats | None = None
    tpot: SavedStats | None = None
    itl: SavedStats | None = None
    e2el: SavedStats | None = None
    engine: dict[str, float] | None = None  # the engine's own timings (measure.engine_timings)
    engine_source: str = ""
    bad: dict[str, int] = {}
    errors: list[str] = []

    def stats(self, name: str) -> SavedStats | None:
        """ttft, tpot, itl or e2el."""
        value = getattr(self, name)
        return value if isinstance(value, SavedStats) else None


def read(data: object) -> dict[str, SavedCheck]:
    """The checks in a decoded file (endpoint -> CheckReport.to_json()); an entry that is
    not a SavedCheck is left out."""
    if not isinstance(data, dict):
        return {}
    out: dict[str, SavedCheck] = {}
    for key, value in data.items():
        try:
            out[str(key)] = msgspec.convert(value, SavedCheck)
        except msgspec.ValidationError:
            continue
    return out


def load(cluster: str) -> dict[str, SavedCheck]:
    """endpoint (node:port) -> its last check's figures."""
    try:
        data = json.loads(path_for(cluster).read_text())
    except (OSError, ValueError):
        return {}
    return read(data)


def save(cluster: str, report: CheckReport) -> None:
    data: dict[str, object] = {k: msgspec.to_builtins(v) for k, v in load(cluster).items()}
    data[report.endpoint] = report.to_json()
    path = path_for(cluster)
    paths.private_dir(path.parent)
    paths.replace_atomically(path, json.dumps(data).encode(), mode=0o600)
