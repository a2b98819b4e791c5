"""The cockpit with the Ray screen on a recorded dashboard: the answers of a real three-node
Ray 2.60 cluster (the demo cluster after `saf run ray-up` and two `saf ray submit`s,
tests/fixtures/ray/dashboard-*.json), or on a head where Ray is not running."""

from __future__ import annotations

import json
from pathlib import Path

from saf.screens.app import SafApp

from saf.errors import RayError
from saf.ray.status import RayStatus, status_from
from tests.snapshot_apps._common import cockpit

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ray"


def recorded_status() -> RayStatus:
    def load(name: str) -> object:
        return json.loads((FIXTURES / f"dashboard-{name}.json").read_text())
    return status_from("http://10.0.0.1:8265", load("nodes"), load("cluster-status"),
                       load("jobs"))


def make_ray_app(*, running: bool = True) -> SafApp:
    async def source() -> RayStatus:
        if not running:
            raise RayError("Ray is not running on the head alpha (nothing answers at "
                           "http://127.0.0.1:8265); start it with `saf run ray-up`")
        return recorded_status()
    return cockpit("healthy-3-nodes.jsonl", ray_source=source)
