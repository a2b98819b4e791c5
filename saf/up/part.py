"""One part of the declared cluster brought up or taken down alone, for the cockpit's Cluster
screen (on the cockpit's fleet, or through `saf serve`'s hub, whose `BringPart` request calls
this): saf.toml's declaration restricted to that part, compiled by saf.up.compile as `saf up`
and `saf down` compile the whole, and run by the recipe runner on the part's node. The run is
logged, listed by `saf runs` and resumable like theirs.

A part is a row of the Cluster screen (saf.up.status): a node (everything `saf up --on NODE`
or `saf down --on NODE` does there, [up]'s recipes included on the way up), Ray on a node, a
service on a node, a model on a node (or, on the row of a placed model's missing replicas,
wherever saf places it; down: wherever it runs).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Literal

from saf.errors import SafError
from saf.events import Emit
from saf.fleet import Fleet
from saf.inventory.model import Inventory
from saf.recipe.events import RunStatus
from saf.recipe.model import Recipe, Var
from saf.recipe.run import RunPlan, run_recipe
from saf.recipe.runner import AskPassword
from saf.up import compile as uc
from saf.up import replicas
from saf.up.declared import Declared, declared
from saf.up.place import placement
from saf.up.status import PLACED_ROW

Kind = Literal["node", "ray", "service", "model"]
Verb = Literal["up", "down"]
KINDS: tuple[Kind, ...] = ("node", "ray", "service", "model")
PART_VAR = "part"  # a part's run's variable: KIND:NAME of the part it brought up or down


class PartRefused(SafError):
    title = "Not done"


def only(found: Declared, kind: Kind, name: str) -> Declared:
    """`found` restricted to one part (a node: all of it; the selector keeps to the node).
    A part saf.toml does not declare is refused, naming it."""
    if found.empty:
        raise PartRefused(f"{found.path or 'the inventory'} declares no [up], [ray], "
                          "[[services]] or [[models]] (see docs/cluster.md)")
    if kind == "node":
        return found
    if kind == "ray":
        if found.ray is None:
            raise PartRefused("saf.toml declares no [ray]")
        return dataclasses.replace(found, up=(), services=(), models=())
    if kind == "service":
        services = tuple(s for s in found.services if s.name == name)
        if not services:
            raise PartRefused(f"saf.toml declares no service {name!r}")
        return dataclasses.replace(found, up=(), ray=None, services=services, models=())
    if kind == "model":
        models = tuple(m for m in found.models if m.name == name)
        if not models:
            raise PartRefused(f"saf.toml declares no model {name!r}")
        return dataclasses.replace(found, up=(), ray=None, services=(), models=models)
    raise PartRefused(f"a part is a node, ray, a service or a model, not {kind!r}")


def selector(kind: Kind, node: str) -> str | None:
    """The nodes the run keeps to: the row's node (a placed model's missing replicas: all)."""
    return None if kind == "model" and node == PLACED_ROW else node


def named(verb: Verb, kind: Kind, node: str, name: str) -> str:
    """The part in words: "service beat on alpha", "ray on alpha", "node alpha"."""
    what, where = _words(verb, kind, node, name)
    return f"{what} {where}".rstrip()


def describe(verb: Verb, kind: Kind, node: str, name: str) -> str:
    """What is done, as the notices and the hub's log say it: "service beat up on alpha"."""
    what, where = _words(verb, kind, node, name)
    return f"{what} {verb} {where}".rstrip()


def _words(verb: Verb, kind: Kind, node: str, name: str) -> tuple[str, str]:
    if kind == "node":
        return f"node {node}", ""
    what = "ray" if kind == "ray" else f"{kind} {name}"
    if node == PLACED_ROW:
        return what, "where saf places it" if verb == "up" else "wherever it runs"
    return what, f"on {node}"


def command(verb: Verb, kind: Kind, node: str) -> str:
    """The command line that does the same for the whole declaration."""
    sel = selector(kind, node)
    return f"saf {verb}" + (f" --on {sel}" if sel else "")


async def compiled(part: Declared, inventory: Inventory, fleet: Fleet, verb: Verb,
                   kind: Kind, name: str) -> Recipe:
    """The recipe of `saf up` / `saf down` for the part alone (a placed model placed now,
    where saved as `saf up` saves it: saf.up.replicas), its run's variables naming the part
    (`PART_VAR`), so that resuming the run builds this recipe again, not the whole
    declaration's (saf.up.bring.resume)."""
    if verb == "down":
        recipe = uc.down_recipe(part, inventory, {})
    else:
        placing = await placement(part, fleet)
        recipe = uc.up_recipe(part, inventory, placing.nodes, surplus=placing.surplus)
        if placing.record:  # as `saf up` keeps it, before the run: where saf put them
            replicas.update(inventory.cluster.name, placing.record)
    value = f"{kind}:{name}"
    return dataclasses.replace(recipe, vars={**recipe.vars, PART_VAR: Var(PART_VAR, value)})


def restricted(found: Declared, values: Mapping[str, str]) -> Declared:
    """`found` restricted as a part's run's variables say (`PART_VAR`); all of it for a run
    of the whole declaration."""
    value = values.get(PART_VAR)
    if not value:
        return found
    kind, _, name = value.partition(":")
    if kind not in KINDS:
        raise PartRefused(f"a run of part {value!r}: not a part saf knows")
    return only(found, kind, name)


async def bring_part(fleet: Fleet, verb: Verb, kind: Kind, node: str, name: str, show: Emit, *,
                     ask_password: AskPassword | None = None) -> RunStatus:
    """Bring part `name` of kind `kind` on `node` up or down (`verb`) as saf.toml declares
    it, on `fleet`; each event of the run reaches `show`; the run's final status."""
    inventory = fleet.inventory
    if verb not in ("up", "down"):
        raise PartRefused(f"a part is brought up or down, not {verb!r}")
    if kind not in KINDS:
        raise PartRefused(f"a part is a node, ray, a service or a model, not {kind!r}")
    if node not in inventory.names and not (kind == "model" and node == PLACED_ROW):
        raise PartRefused(f"no node {node!r} in this cluster")
    part = only(declared(inventory), kind, name)
    # Ray's step reads [ray]'s head, resources and python from the inventory its fleet
    # holds (saf.up.compile.for_ray): a fleet of its own then, as `saf up` opens one.
    own = Fleet(uc.for_ray(inventory, part)) if part.ray is not None else None
    try:
        runs_on = own or fleet
        recipe = await compiled(part, inventory, runs_on, verb, kind, name)
        plan = RunPlan(recipe, {}, selector(kind, node))
        status = await run_recipe(plan, runs_on, show, ask_password=ask_password)
        if verb == "down" and kind == "model" and node == PLACED_ROW \
                and status == RunStatus.OK:
            # Nothing of it runs: placed from nothing next, as after `saf down`.
            replicas.forget(inventory.cluster.name, name)
        return status
    finally:
        if own is not None:
            await own.close()
