"""The cockpit with the Cluster screen on a fixed `saf status` view (no live nodes): the
three demo nodes with a declared Ray, two services and two models, in every verdict: a
service kept by systemd with restarts, one under saf's supervisor, one killed; a model
ready, one down, a Ray node short of its declared GPU, and one node that does not answer."""

from __future__ import annotations

from typing import Any

from saf.screens.app import SafApp

from saf.up.status import ClusterStatus, Judged, ModelRow, NodeRow, RayRow, ServiceRow
from tests.snapshot_apps._common import cockpit

OK = Judged("as declared")


def recorded_status() -> ClusterStatus:
    return ClusterStatus(
        "demo",
        nodes=[NodeRow("alpha", "10.0.0.1", OK), NodeRow("beta", "10.0.0.2", OK),
               NodeRow("gamma", "10.0.0.3", Judged(
                   "unreachable", "refused: connection refused by 10.0.0.3:22"))],
        ray=[RayRow("alpha", True, {"CPU": 16.0}, {"CPU": 16.0, "GPU": 0.0}, True, OK),
             RayRow("beta", False, {"GPU": 2.0}, {"CPU": 32.0, "GPU": 1.0}, True,
                    Judged("differs", "GPU 1 (declared 2)")),
             RayRow("gamma", False, {}, None, None, Judged("unreachable", "refused"))],
        ray_declared=True,
        services=[
            ServiceRow("publisher", "alpha", "active", "systemd", 2, "2026-12-07 09:12:03",
                       4121, True, "ok", OK),
            ServiceRow("aggregator", "beta", "active", "detached", 0, "2026-12-07 09:12:05",
                       2210, False, None, Judged("not kept across reboots")),
            ServiceRow("heartbeat", "alpha", "failed", "detached", 0, None, None, False, None,
                       Judged("down", "failed")),
        ],
        models=[
            ModelRow("qwen-7b", "beta", 8000, "vllm", "ready", True, 1, True,
                     {"at": 1_790_000_000.0, "ttft": {"mean": 0.184}}, OK),
            ModelRow("llama-3b", "alpha", 8001, "llama-server", "exited", False, None, False,
                     None, Judged("down", "exited")),
        ])


def make_cluster_app(*, readonly: bool = False, **context: Any) -> SafApp:
    """`context`: more CockpitContext fields (node actions, ...)."""
    async def source() -> ClusterStatus:
        return recorded_status()
    return cockpit("healthy-3-nodes.jsonl", cluster_status=source, readonly=readonly,
                   **context)
