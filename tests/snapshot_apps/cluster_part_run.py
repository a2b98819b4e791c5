"""Cluster: a part's run mid-way, shown in place of the tables as the Recipes screen shows a
run: service heartbeat brought up on alpha (`u`), its one step running there. The events are
a real run's (recorded on loopback nodes, the inventory's path made the lab's); the run never
ends here, so the footer offers x (Cancel run)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from saf.events import Emit
from saf.recipe.log import read_events
from tests.snapshot_apps._cluster import make_cluster_app

RUN = Path(__file__).resolve().parents[1] / "fixtures" / "recipes" / "runs" / \
    "part-up-midrun.jsonl"


class RecordedPartRun:
    """Node actions whose part run shows the recorded events, then goes on for ever."""

    def __init__(self) -> None:
        self.shown = asyncio.Event()

    async def signal(self, node: str, pid: int, signal: str) -> str:
        raise AssertionError("not asked here")

    async def restart_part(self, node: str, kind: str, name: str, port: int = 0) -> str:
        raise AssertionError("not asked here")

    async def bring_part(self, verb: str, kind: str, node: str, name: str, show: Emit,
                         ask_password: Any = None) -> str:
        for event in read_events(RUN):
            show(event)
        self.shown.set()
        await asyncio.Event().wait()
        return "ok"


app = make_cluster_app(actions=RecordedPartRun())
