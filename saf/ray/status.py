"""The Ray cluster as saf shows it: nodes (alive or dead, address, resources and their use),
totals and jobs, built from the dashboard's answers. What the dashboard says is untrusted:
a field of the wrong type or out of range is left out and counted in `bad`, never a crash."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from saf.ray.dashboard import Dashboard

# Resources Ray adds by itself; shown only as totals (memory) or not at all.
_INTERNAL = ("node:", "memory", "object_store_memory", "objectStoreMemory")


@dataclass
class RayNode:
    node_id: str
    name: str
    address: str
    alive: bool
    head: bool
    state: str
    resources: dict[str, float] = field(default_factory=dict)  # custom + CPU/GPU totals
    used: dict[str, float] = field(default_factory=dict)
    memory: float | None = None
    object_store: float | None = None
    object_store_used: float | None = None
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class RayJob:
    job_id: str
    submission_id: str | None
    status: str
    entrypoint: str
    start: float | None  # seconds since the epoch
    end: float | None
    message: str = ""

    def duration(self, now: float | None = None) -> float | None:
        if self.start is None:
            return None
        end = self.end if self.end is not None else (now or time.time())
        return max(0.0, end - self.start)


@dataclass
class RayStatus:
    dashboard_url: str
    nodes: list[RayNode]
    jobs: list[RayJob] = field(default_factory=list)
    bad: int = 0

    @property
    def alive(self) -> list[RayNode]:
        return [n for n in self.nodes if n.alive]

    @property
    def down(self) -> list[str]:
        """The nodes not alive now: names with no ALIVE entry. Ray keeps a restarted
        node's old raylet as a DEAD entry beside its new one for a while; that is history,
        not a node down."""
        up = {n.name for n in self.alive}
        return sorted({n.name for n in self.nodes if not n.alive} - up)

    def total(self, resource: str) -> float:
        return sum(n.resources.get(resource, 0.0) for n in self.alive)

    def used(self, resource: str) -> float:
        return sum(n.used.get(resource, 0.0) for n in self.alive)

    @property
    def memory(self) -> float:
        return sum(n.memory or 0.0 for n in self.alive)

    @property
    def object_store(self) -> float:
        return sum(n.object_store or 0.0 for n in self.alive)

    @property
    def object_store_used(self) -> float:
        return sum(n.object_store_used or 0.0 for n in self.alive)

    def to_json(self) -> dict[str, Any]:
        return {
            "dashboard_url": self.dashboard_url,
            "nodes": [asdict(n) for n in self.nodes],
            "totals": {"nodes_alive": len(self.alive), "nodes": len(self.nodes),
                       "nodes_down": self.down,
                       "CPU": self.total("CPU"), "GPU": self.total("GPU"),
                       "CPU_used": self.used("CPU"), "GPU_used": self.used("GPU"),
                       "memory": self.memory, "object_store": self.object_store,
                       "object_store_used": self.object_store_used},
            "jobs": [asdict(j) for j in self.jobs],
            "bad_fields": self.bad,
        }


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) and 0 <= value < 1e18 else None


class _Counter:
    def __init__(self) -> None:
        self.bad = 0

    def text(self, value: Any, limit: int = 300) -> str | None:
        if isinstance(value, str) and len(value) <= limit:
            return value
        if value is not None:
            self.bad += 1
        return None

    def table(self, value: Any) -> dict[str, float]:
        out: dict[str, float] = {}
        if not isinstance(value, dict):
            if value is not None:
                self.bad += 1
            return out
        for key, raw in list(value.items())[:200]:
            number = _num(raw)
            if isinstance(key, str) and len(key) <= 200 and number is not None:
                out[key] = number
            else:
                self.bad += 1
        return out


def _rows(answer: Any) -> list[Any]:
    """The list of rows in a state-API answer ({"data": {"result": {"result": [...]}}})."""
    try:
        rows = answer["data"]["result"]["result"]
    except (KeyError, TypeError):
        return []
    return rows if isinstance(rows, list) else []


def _usage(answer: Any) -> dict[str, dict[str, list[Any]]]:
    try:
        usage = answer["data"]["clusterStatus"]["loadMetricsReport"]["usageByNode"]
    except (KeyError, TypeError):
        return {}
    return usage if isinstance(usage, dict) else {}


def build_nodes(nodes_answer: Any, usage_answer: Any, counter: _Counter) -> list[RayNode]:
    usage = _usage(usage_answer)
    out: list[RayNode] = []
    for row in _rows(nodes_answer)[:10_000]:
        if not isinstance(row, dict):
            counter.bad += 1
            continue
        node_id = counter.text(row.get("node_id"), 200)
        state = counter.text(row.get("state"), 40) or "UNKNOWN"
        if node_id is None:
            counter.bad += 1
            continue
        total = counter.table(row.get("resources_total"))
        used_raw = usage.get(node_id, {})
        used: dict[str, float] = {}
        if isinstance(used_raw, dict):
            for key, pair in used_raw.items():
                if isinstance(pair, list) and len(pair) == 2 and _num(pair[0]) is not None:
                    name = {"objectStoreMemory": "object_store_memory"}.get(key, key)
                    used[name] = _num(pair[0]) or 0.0
        labels_raw = row.get("labels")
        labels = {k: v for k, v in labels_raw.items() if isinstance(k, str)
                  and isinstance(v, str)} if isinstance(labels_raw, dict) else {}
        out.append(RayNode(
            node_id=node_id, name=counter.text(row.get("node_name"), 200) or node_id[:12],
            address=counter.text(row.get("node_ip"), 100) or "",
            alive=state == "ALIVE", head=row.get("is_head_node") is True, state=state,
            resources={k: v for k, v in total.items() if not k.startswith(_INTERNAL)},
            used={k: v for k, v in used.items() if not k.startswith(_INTERNAL)},
            memory=total.get("memory"), object_store=total.get("object_store_memory"),
            object_store_used=used.get("object_store_memory"), labels=labels))
    out.sort(key=lambda n: (not n.head, not n.alive, n.name))
    return out


def build_jobs(answer: Any, counter: _Counter) -> list[RayJob]:
    rows = answer if isinstance(answer, list) else []
    jobs: list[RayJob] = []
    for row in rows[:10_000]:
        if not isinstance(row, dict):
            counter.bad += 1
            continue
        # The submission id is what `saf ray submit` printed and the job API takes.
        job_id = counter.text(row.get("submission_id"), 200) or counter.text(
            row.get("job_id"), 200)
        if job_id is None:
            counter.bad += 1
            continue
        start, end = _num(row.get("start_time")), _num(row.get("end_time"))
        jobs.append(RayJob(
            job_id=job_id, submission_id=counter.text(row.get("submission_id"), 200),
            status=counter.text(row.get("status"), 40) or "UNKNOWN",
            entrypoint=counter.text(row.get("entrypoint"), 2000) or "",
            start=start / 1000 if start else None, end=end / 1000 if end else None,
            message=counter.text(row.get("message"), 2000) or ""))
    jobs.sort(key=lambda j: j.start or 0, reverse=True)
    return jobs


def parse_jobs(answer: Any) -> list[RayJob]:
    return build_jobs(answer, _Counter())


def status_from(url: str, nodes_answer: Any, usage_answer: Any,
                jobs_answer: Any = None) -> RayStatus:
    """The status from the dashboard's answers to /api/v0/nodes, /api/cluster_status and
    /api/jobs/ (what read_status asks; recorded answers in tests)."""
    counter = _Counter()
    nodes = build_nodes(nodes_answer, usage_answer, counter)
    job_list = build_jobs(jobs_answer, counter) if jobs_answer is not None else []
    return RayStatus(url, nodes, job_list, counter.bad)


async def read_status(dashboard: Dashboard, *, jobs: bool = True) -> RayStatus:
    """The cluster's status, read through the dashboard (raises RayError when it does not
    answer)."""
    nodes_answer = await dashboard.nodes()
    usage_answer = await dashboard.cluster_status()
    jobs_answer = await dashboard.jobs() if jobs else None
    return status_from(dashboard.url, nodes_answer, usage_answer, jobs_answer)
