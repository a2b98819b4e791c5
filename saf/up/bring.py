"""What `saf up` and `saf down` do around the runner, for any face: wait for the nodes, place
the models, compile the recipe (saf.up.compile), and read the runner's events back as the
plan (what would change or failed, per node and part). The faces (saf.commands.up) print."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from saf import defaults
from saf.errors import SafError, SelectorError
from saf.events import Event
from saf.fleet import Fleet
from saf.inventory.model import Inventory, Node
from saf.recipe.events import NodeStepFinished, RunStarted, StepStatus
from saf.recipe.log import find_run
from saf.recipe.model import Recipe
from saf.recipe.run import NothingToResume, RunPlan
from saf.select import select
from saf.up import compile as uc
from saf.up import orphans as uo
from saf.up.declared import Declared, declared
from saf.up.part import restricted
from saf.up.place import Placement, placement
from saf.wait import wait_for_nodes

WAIT = defaults.UP_WAIT  # seconds `saf up` waits for a node that does not answer yet


class NothingDeclared(SafError):
    title = "Nothing declared"


def read(inventory: Inventory) -> Declared:
    found = declared(inventory)
    if found.empty:
        raise NothingDeclared(f"{inventory.path or 'the inventory'} declares no [up], [ray], "
                              "[[services]] or [[models]] (see docs/cluster.md)")
    return found


async def lost_nodes(fleet: Fleet, nodes: list[Node], within: float = WAIT) -> dict[str, str]:
    """Each node that does not answer SSH within `within` seconds -> why (empty: all do)."""
    outcome = await wait_for_nodes(fleet, nodes, timeout=within)
    return {m.node: m.message for m in outcome.missing}


def skipped_parts(found: Declared, inventory: Inventory, lost: Iterable[str]
                  ) -> dict[str, list[str]]:
    """Each lost node -> the parts declared on it that `saf up` cannot bring there (its
    [up] recipes, Ray, its services, the models pinned to it by `on`); a placed model is
    not among them: its replica goes to another node."""
    out: dict[str, list[str]] = {}
    for node in lost:
        parts = [f"[up] {step.name}" for step in found.up_recipe().steps
                 if node in _named(inventory, step.on)]
        if found.ray is not None:
            parts.append("ray")
        parts += [f"service {s.name}" for s in found.services
                  if node in (s.nodes or _named(inventory, s.on))]
        parts += [f"model {m.name}" for m in found.models
                  if m.on is not None and node in (m.nodes or _named(inventory, m.on))]
        out[node] = parts
    return out


def _named(inventory: Inventory, selector: str) -> set[str]:
    """The nodes a selector names by what the inventory declares (no node is asked its OS:
    a lost one cannot answer)."""
    try:
        return {n.name for n in select(inventory, selector, allow_empty=True)}
    except SelectorError:
        return set()


async def recipe(found: Declared, inventory: Inventory, fleet: Fleet, *, down: bool,
                 placing: Placement | None = None, orphans: uo.Orphans | None = None,
                 lost: Iterable[str] = ()) -> Recipe:
    """The recipe for up or down; the placed models' nodes are chosen now (among every
    node) unless given; `orphans`: the services not declared any more, removed; `lost`:
    the nodes that do not answer (Ray's head among them: no worker's Ray is started)."""
    if down:
        return uc.down_recipe(found, inventory, {}, orphans)
    if placing is None:
        placing = await placement(found, fleet)
    return uc.up_recipe(found, inventory, placing.nodes, surplus=placing.surplus,
                        orphans=orphans, head_lost=head_lost(found, lost))


def head_lost(found: Declared, lost: Iterable[str]) -> bool:
    """Whether [ray]'s head is among the lost nodes."""
    return found.ray is not None and found.ray.head in set(lost)


@dataclass
class Finding:
    """One node's result for one part, as the plan or the failure report shows it."""

    node: str
    step: int
    part: str
    status: StepStatus
    message: str
    would: list[str] = field(default_factory=list)
    tail: list[str] = field(default_factory=list)


@dataclass
class Collected:
    """A run's events read back: each step's name, and every node's result."""

    names: dict[int, str] = field(default_factory=dict)
    results: list[Finding] = field(default_factory=list)
    run: str = ""
    nodes: list[str] = field(default_factory=list)

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.run = event.run
            self.nodes = list(event.nodes)
            self.names = {s.index: s.name for s in event.steps}
        elif isinstance(event, NodeStepFinished):
            self.results.append(Finding(event.node, event.step,
                                        self.names.get(event.step, str(event.step)),
                                        event.status, event.message, list(event.would),
                                        list(event.tail)))

    def of(self, *statuses: StepStatus, nodes: list[str] | None = None) -> list[Finding]:
        """The results of these statuses, by node (in `nodes`' order), then by step."""
        order = {n: i for i, n in enumerate(nodes or [])}
        found = [f for f in self.results if f.status in statuses]
        return sorted(found, key=lambda f: (order.get(f.node, len(order)), f.node, f.step))


def summary(found: Declared, nodes: int) -> str:
    """"3 nodes, ray, 1 service, 2 models": what the declaration holds."""
    parts = [f"{nodes} node{'s' if nodes != 1 else ''}"]
    if found.up:
        parts.append(f"{len(found.up)} [up] recipe{'s' if len(found.up) != 1 else ''}")
    if found.ray is not None:
        parts.append("ray")
    for what, items in (("service", found.services), ("model", found.models)):
        if items:
            parts.append(f"{len(items)} {what}{'s' if len(items) != 1 else ''}")
    return ", ".join(parts)


def resume(run: str, inventory: Inventory, *, check: bool, selector: str | None
           ) -> Callable[[], RunPlan] | None:
    """When `run` is a `saf up` / `saf down` run (or one part's, saf.up.part): how to build
    its resume (the same recipe compiled again from saf.toml, the models where that run
    placed them); else None."""
    previous = find_run(run, cluster=inventory.cluster.name)
    if previous.started.recipe not in (uc.UP, uc.DOWN):
        return None

    def plan() -> RunPlan:
        start = previous.first_unfinished_step()
        if start is None:
            raise NothingToResume(f"run {previous.run} has nothing left to do "
                                  f"(it ended {previous.status})")
        found = restricted(read(inventory), previous.started.vars)
        placed = uc.placed_of(previous.started.vars)
        left = uo.of_vars(previous.started.vars)
        made = (uc.down_recipe(found, inventory, placed, left)
                if previous.started.recipe == uc.DOWN
                else uc.up_recipe(found, inventory, placed, orphans=left))
        return RunPlan(made, {}, selector or previous.started.selector, check, start,
                       previous.run)
    return plan
