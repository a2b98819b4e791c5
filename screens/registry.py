"""The cockpit's screens, in one list: the app installs them (as screen modes), the command
palette offers them, and help lists them. A new screen is one line here (plus its module).

`factory` is "module:Class", imported when the screen is first opened. `key` is the global
key that opens it (shown in help), or "" for none. A screen that needs a node takes it as its
constructor's only argument and is opened from a node (Enter on the dashboard); it is pushed
onto the screen it was opened from rather than being a mode of its own.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from textual.screen import Screen

# The screen the cockpit opens on, and goes back to last.
HOME = "dashboard"


@dataclass(frozen=True)
class ScreenEntry:
    name: str
    title: str
    help: str
    factory: str
    key: str = ""
    needs_node: bool = False

    def build(self, *args: str) -> Screen[None]:
        """A new screen of this kind (a node's name for one that `needs_node`)."""
        module, _, attr = self.factory.partition(":")
        screen: Screen[None] = getattr(importlib.import_module(module), attr)(*args)
        return screen


# In the order help and the palette list them: by key, then the node screen.
SCREENS: list[ScreenEntry] = [
    ScreenEntry("dashboard", "Dashboard", "Every node at a glance: state, CPU, memory, GPUs, "
                "network", "saf.screens.dashboard:DashboardScreen", key="1"),
    ScreenEntry("ray", "Ray", "The Ray cluster: nodes, resources and their use, object store, "
                "jobs, dashboard URL", "saf.screens.ray:RayScreen", key="2"),
    ScreenEntry("network", "Network", "The links: the speed matrix (Gbit/s, RTT, MTU) and every "
                "node's interfaces; run a speed test", "saf.screens.network:NetworkScreen",
                key="3"),
    ScreenEntry("recipes", "Recipes", "Run a recipe and watch each step on each node; past runs",
                "saf.screens.recipes:RecipesScreen", key="4"),
    ScreenEntry("signals", "Signals", "The trading-signal stream: symbols, rates, latency, "
                "anomalies, bad frames", "saf.screens.signals:SignalsScreen", key="5"),
    ScreenEntry("models", "Models", "Every model server saf started: state, uptime, last "
                "check's latency and tokens/s; check, stop, restart, log",
                "saf.screens.models:ModelsScreen", key="6"),
    ScreenEntry("cluster", "Cluster", "The declared cluster against what runs (saf status): "
                "nodes, Ray, services, models, each with its verdict; restart one part",
                "saf.screens.cluster:ClusterScreen", key="7"),
    ScreenEntry("node", "Node", "One node in detail: cores, memory, NUMA, GPUs and their "
                "processes, interfaces, disks", "saf.screens.node:NodeScreen", needs_node=True),
]


def entry(name: str) -> ScreenEntry:
    for item in SCREENS:
        if item.name == name:
            return item
    raise KeyError(name)


def entry_for(screen: Screen[Any]) -> ScreenEntry | None:
    """The entry a screen was built from (None for help, questions and other modals)."""
    made_by = f"{type(screen).__module__}:{type(screen).__qualname__}"
    return next((item for item in SCREENS if item.factory == made_by), None)
