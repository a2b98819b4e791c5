"""Where `saf up` last put each placed model's replicas (`placement = "auto"`), kept on the
operator's machine (<state>/up/replicas-CLUSTER.json): the node of each replica and, for one
re-placed because its node was lost, the node it came from.

`saf up` reads it to keep replicas where they run (a lost node that comes back does not take
its replica back: docs/placement.md), `saf status` to say that a replica was re-placed.
Written atomically; a file that does not read back is treated as empty (the placement is
then read from the nodes alone, as before the first `saf up`)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import msgspec

from saf import paths

_SAFE = re.compile(r"[^A-Za-z0-9._-]")


class Replica(msgspec.Struct, frozen=True):
    node: str
    moved_from: str | None = None  # the lost node it ran on before saf up moved it here


Record = dict[str, list[Replica]]  # model name -> its replicas


def path_for(cluster: str) -> Path:
    return paths.state_dir() / "up" / f"replicas-{_SAFE.sub('_', cluster)}.json"


def load(cluster: str) -> Record:
    try:
        return msgspec.json.decode(path_for(cluster).read_bytes(), type=Record)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return {}


def save(cluster: str, record: Record) -> None:
    path = path_for(cluster)
    paths.private_dir(path.parent)
    paths.replace_atomically(path, json.dumps(msgspec.to_builtins(record)).encode(),
                             mode=0o600)


def update(cluster: str, record: Record) -> None:
    """Save the placement of the models `record` names, the others' entries as they were
    (one part brought up alone, saf.up.part: its placement is the cluster's all the same)."""
    save(cluster, {**load(cluster), **record})


def forget(cluster: str, model: str) -> None:
    """Forget one model's placement (taken down wherever it runs: placed from nothing next)."""
    record = load(cluster)
    if record.pop(model, None) is not None:
        save(cluster, record)


def clear(cluster: str) -> None:
    """Forget the placement (after `saf down`: the next `saf up` places from nothing)."""
    path_for(cluster).unlink(missing_ok=True)


def moved_from(record: Record, model: str, node: str) -> str | None:
    return next((r.moved_from for r in record.get(model, []) if r.node == node), None)


def keep_order(record: Record, model: str, nodes: set[str]) -> list[str]:
    """The nodes serving `model`, those of the last placement first, then by name: the
    first `replicas` of them keep their replica, the rest are surplus (saf up stops those
    it started; saf status names them)."""
    was = {r.node for r in record.get(model, [])}
    return sorted(nodes, key=lambda n: (n not in was, n))
