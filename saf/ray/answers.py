"""The Ray probe's answers (saf.ray.node_probe), one Struct per action, and the one gate they
pass: `decode` finds the answer among the command's output and checks it whole. An answer that
is not what this file declares fails the call with the node's name and what was wrong (the
field's path and the expected type or range), never a traceback and never half-read."""

from __future__ import annotations

from typing import Annotated, TypeVar

import msgspec
from msgspec import Meta

from saf.errors import RayError
from saf.ray.facts import MARK, Answer, Count, NodeFacts, Text

Line = Annotated[str, Meta(max_length=4000)]


class Started(Answer, tag="start", frozen=True):
    exit_status: int
    raylet_log: Text | None
    ended_early: bool
    record_error: Text | None
    started_at: Annotated[float, Meta(gt=0, lt=1e11)]
    raylet_crashed: bool
    raylet_gone: bool


class Stopped(Answer, tag="stop", frozen=True):
    stopped: Count
    killed: Count
    left: Annotated[tuple[Line, ...], Meta(max_length=100_000)]


class LogTail(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The end of one Ray log on the node: its path, what part of it this is, its lines."""

    path: Text
    what: Annotated[str, Meta(max_length=300)]
    lines: Annotated[tuple[Line, ...], Meta(max_length=1000)]


class Tail(Answer, tag="tail", frozen=True):
    logs: Annotated[tuple[LogTail, ...], Meta(max_length=10)]


class Probed(Answer, tag="probe", frozen=True):
    probes: dict[Annotated[str, Meta(max_length=300)], Annotated[str, Meta(max_length=300)]]


class Failed(Answer, tag="error", frozen=True):
    """The node's own trouble (a folder of another user's, a full disk), said in one line."""

    error: str


A = TypeVar("A", NodeFacts, Started, Stopped, Tail, Probed)
ACTIONS: dict[type[Answer], str] = {NodeFacts: "facts", Started: "start", Stopped: "stop",
                                    Tail: "tail", Probed: "probe"}


def marked_line(stdout: str) -> str | None:
    """The probe's answer line (the last one with its mark) among the command's output."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(MARK):
            return line[len(MARK):]
    return None


def decode(text: str, expected: type[A], node: str) -> A:
    """`expected` from the probe's answer line, or RayError saying what was wrong."""
    action = ACTIONS[expected]
    try:
        value = msgspec.json.decode(text, type=expected | Failed)
    except msgspec.DecodeError as exc:
        raise RayError(f"{node}: the answer of saf's Ray probe ({action}) is not what saf "
                       f"expects: {str(exc)[:300]}") from None
    if isinstance(value, Failed):
        raise RayError(f"{node}: {action} failed on the node: {value.error[:500]}")
    return value
