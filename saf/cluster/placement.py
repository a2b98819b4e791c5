"""Where each replica of each model goes, by memory: `placement = "auto"`.

Plain inputs, so any face can feed it: the nodes' memory (saf.cluster.capacity.NodeMemory:
name, kind, free and total bytes), the headroom kept on each, and each model's demand (bytes
one replica needs, from saf.inference.estimate; how many replicas; which nodes it may use).

The rule, deterministic: models in the order given; each replica on the node with the most
memory still available (free - headroom - what earlier replicas placed there take), the name
breaking ties; never two replicas of one model on one node unless the model allows it. A replica
that fits nowhere refuses the whole placement before anything starts, with every node's figures
(`PlacementRefused.rows`, and as a table in its message).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from saf.cluster.capacity import Headroom, NodeMemory
from saf.errors import SafError
from saf.format import fmt_bytes


@dataclass(frozen=True)
class ModelDemand:
    name: str
    needs: int                           # bytes one replica needs
    replicas: int = 1
    nodes: tuple[str, ...] | None = None  # the nodes it may use (its `on`); None: any
    share_node: bool = False              # two replicas may go on one node


@dataclass(frozen=True)
class FitRow:
    """One node's figures for one replica: all in bytes."""

    node: str
    kind: str
    free: int
    headroom: int
    placed: int      # taken by replicas placed before this one
    needed: int
    fits: bool
    why: str = ""    # why it does not fit, or what the memory is

    @property
    def available(self) -> int:
        return max(0, self.free - self.headroom - self.placed)


def fit_rows(nodes: Sequence[NodeMemory], needed: int, headroom: Headroom,
             placed: dict[str, int] | None = None, allowed: tuple[str, ...] | None = None,
             holding: frozenset[str] = frozenset()) -> list[FitRow]:
    """Every node's figures for one replica that needs `needed` bytes. `placed`: bytes
    already given to earlier replicas per node; `allowed`: the nodes the model may use;
    `holding`: nodes that already hold a replica of this model (and may not take another)."""
    placed = placed or {}
    rows = []
    for node in nodes:
        room = 0 if node.kind == "none" else node.free - headroom.of(node.total) - placed.get(
            node.name, 0)
        if node.kind == "none":
            why = node.detail or "no memory reading"
        elif allowed is not None and node.name not in allowed:
            why = "not among the model's nodes"
        elif node.name in holding:
            why = "holds a replica already"
        elif room < needed:
            why = f"short by {fmt_bytes(needed - room)}"
        else:
            why = ""
        rows.append(FitRow(node=node.name, kind=node.kind, free=node.free,
                           headroom=0 if node.kind == "none" else headroom.of(node.total),
                           placed=placed.get(node.name, 0), needed=needed, fits=not why,
                           why=why or node.detail))
    return rows


def rows_text(rows: Sequence[FitRow]) -> str:
    """The figures as a plain table (for an error message and a log)."""
    head = ("node", "memory", "free", "headroom", "placed", "available", "needed", "fits")
    body = [(r.node, r.kind, fmt_bytes(r.free), fmt_bytes(r.headroom), fmt_bytes(r.placed),
             fmt_bytes(r.available), fmt_bytes(r.needed),
             "yes" if r.fits else f"no: {r.why}") for r in rows]
    widths = [max(len(str(line[i])) for line in (head, *body)) for i in range(len(head))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True))
                     .rstrip() for line in (head, *body))


class PlacementRefused(SafError):
    """A replica fits on no node; `rows` are every node's figures for it."""

    def __init__(self, model: str, replica: int, replicas: int, rows: list[FitRow],
                 headroom: Headroom) -> None:
        self.model, self.rows = model, rows
        needed = fmt_bytes(rows[0].needed) if rows else "?"
        which = f"replica {replica} of {replicas}" if replicas > 1 else "it"
        super().__init__(f"model {model}: {which} fits on no node ({needed} needed, headroom "
                         f"{headroom}); nothing was started\n" + rows_text(rows))


def place(demands: Sequence[ModelDemand], nodes: Sequence[NodeMemory],
          headroom: Headroom) -> dict[str, list[str]]:
    """model name -> the node of each replica, in order (PlacementRefused when one fits
    nowhere)."""
    placed: dict[str, int] = {}
    result: dict[str, list[str]] = {}
    for demand in demands:
        chosen: list[str] = []
        for replica in range(demand.replicas):
            holding = frozenset() if demand.share_node else frozenset(chosen)
            rows = fit_rows(nodes, demand.needs, headroom, placed, demand.nodes, holding)
            fitting = [r for r in rows if r.fits]
            if not fitting:
                raise PlacementRefused(demand.name, replica + 1, demand.replicas, rows,
                                       headroom)
            best = min(fitting, key=lambda r: (-r.available, r.node))
            chosen.append(best.node)
            placed[best.node] = placed.get(best.node, 0) + demand.needs
        result[demand.name] = chosen
    return result


@dataclass(frozen=True)
class Move:
    """One replica put on a new node: `lost` is the node it ran on (None: it was missing)."""

    model: str
    lost: str | None
    to: str


@dataclass
class Replaced:
    """What `replace_lost` decided: the whole new placement, the replicas it moved, and for
    a model it could not bring back to its declared count, every node's figures for the
    replica that fits nowhere (the model then runs with fewer: nothing else is stopped)."""

    placement: dict[str, list[str]]
    moved: list[Move]
    short: dict[str, list[FitRow]]


def replace_lost(demands: Sequence[ModelDemand], running: dict[str, list[str]],
                 lost: frozenset[str] | set[str], nodes: Sequence[NodeMemory],
                 headroom: Headroom) -> Replaced:
    """Bring each model back to its declared replicas after nodes are lost, moving only the
    replicas that ran on a lost node (or are missing): the others stay where they run.

    `running`: model -> the nodes its replicas run on now (from the records); `nodes`: the
    nodes' memory now, where the running replicas already take their share (the agents read
    it with them loaded), so only the replicas placed here are counted on top. A lost node
    takes nothing, whatever its last figures said. Models in the order given, each new
    replica by `place`'s rule (most memory available, the name breaking ties)."""
    alive = [n for n in nodes if n.name not in lost]
    placed: dict[str, int] = {}
    result: dict[str, list[str]] = {}
    moved: list[Move] = []
    short: dict[str, list[FitRow]] = {}
    for demand in demands:
        now = running.get(demand.name, [])
        kept = [n for n in now if n not in lost][:demand.replicas]
        gone = [n for n in now if n in lost]
        chosen = list(kept)
        while len(chosen) < demand.replicas:
            holding = frozenset() if demand.share_node else frozenset(chosen)
            rows = fit_rows(alive, demand.needs, headroom, placed, demand.nodes, holding)
            fitting = [r for r in rows if r.fits]
            if not fitting:
                short[demand.name] = rows
                break
            best = min(fitting, key=lambda r: (-r.available, r.node))
            chosen.append(best.node)
            placed[best.node] = placed.get(best.node, 0) + demand.needs
            moved.append(Move(demand.name, gone.pop(0) if gone else None, best.node))
        result[demand.name] = chosen
    return Replaced(result, moved, short)
