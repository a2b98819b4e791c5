"""Each endpoint's last check, kept on the operator's machine (<state>/models/checks-CLUSTER.json)
so `saf models` and the Models screen can show its figures later. Written atomically; a file
that does not read back is treated as empty."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from saf import paths
from saf.inference.measure import CheckReport

_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def path_for(cluster: str) -> Path:
    return paths.state_dir() / "models" / f"checks-{_SAFE.sub('_', cluster)}.json"


def load(cluster: str) -> dict[str, dict[str, Any]]:
    """endpoint (node:port) -> its last check's figures (CheckReport.to_json())."""
    try:
        data = json.loads(path_for(cluster).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, dict)}


def save(cluster: str, report: CheckReport) -> None:
    data = load(cluster)
    data[report.endpoint] = report.to_json()
    path = path_for(cluster)
    paths.private_dir(path.parent)
    paths.replace_atomically(path, json.dumps(data).encode(), mode=0o600)
