"""`saf status`'s view: each part of the declared cluster (nodes, Ray, services, models) with
what was found of it and one verdict, the same word in the CLI, its JSON and the cockpit.

The verdict is `as declared`, `missing` (nothing of it there), `differs` (there, but not as
declared: `why` says how), `down` (installed or recorded, not running or not answering),
`not kept across reboots` (running as declared under saf's own supervisor or detached, where
the node has no init system saf can use: as good as saf can make it there),
`unreachable` (its node does not answer SSH: nothing is known of it), or `not declared` (a
service saf up installed, or a model server it started detached, that saf.toml no longer
declares: `saf up --prune` removes it).

The cluster is as declared when every part is `as declared` or `not kept across reboots`
(the latter is what `saf up` itself falls back to on such a node; it is shown, not failed).
What is gathered is built by saf.up.gather; this module only holds and judges it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

Verdict = Literal["as declared", "missing", "differs", "down", "not kept across reboots",
                  "unreachable", "not declared"]
VERDICTS: tuple[Verdict, ...] = get_args(Verdict)
FINE: tuple[Verdict, ...] = ("as declared", "not kept across reboots")
NOT_DECLARED = "saf up installed it, saf.toml no longer declares it (saf up --prune removes it)"
NOT_DECLARED_MODEL = ("saf up started it detached, saf.toml no longer declares it "
                      "(saf up --prune stops it)")
# A unit that runs but is not enabled: running as declared today, gone after a reboot.
DISABLED = "disabled: it will not start at boot (saf up enables it)"

PLACED_ROW = "(placed)"  # the node of a placed model's row for its missing replicas


@dataclass(frozen=True)
class Judged:
    """A verdict and, for anything but `as declared`, why (shown as "differs: WHY")."""

    verdict: Verdict
    why: str = ""

    @property
    def fine(self) -> bool:
        return self.verdict in FINE

    @property
    def text(self) -> str:
        return f"{self.verdict}: {self.why}" if self.why else self.verdict


@dataclass(frozen=True)
class NodeRow:
    node: str
    host: str
    judged: Judged  # as declared (answers SSH) or unreachable


@dataclass(frozen=True)
class RayRow:
    node: str
    head: bool
    declared: dict[str, float]  # the resources [ray] declares for it
    found: dict[str, float] | None  # its alive entry's resources; None when there is none
    # With [ray] persist = true: whether service `ray` (unit saf-ray) keeps it across
    # reboots (False: saf's supervisor; None: not installed, or persist is false).
    kept_across_reboots: bool | None
    judged: Judged


@dataclass(frozen=True)
class ServiceRow:
    service: str
    node: str
    state: str  # the manager's word ("active", "failed", "absent"...), "" when unknown
    manager: str  # systemd, systemd-user, launchd-daemon, launchd-agent, detached
    restarts: int | None
    since: str | None
    pid: int | None
    kept_across_reboots: bool | None
    check: str | None  # the declared check's answer ("ok", "failed (exit 1)"), None if none
    judged: Judged


@dataclass(frozen=True)
class ModelRow:
    model: str
    node: str  # where it runs (or should run: the declared node when nothing runs)
    port: int
    engine: str  # the running server's engine, else the declared one
    state: str  # the server's state (ready, loading, exited...), "" when none was found
    answers: bool  # whether its server answered its health URL just now
    restarts: int | None  # when kept by a unit (service model-NAME)
    kept_across_reboots: bool | None
    last_check: dict[str, Any] | None  # saf.inference.checks' record of this endpoint
    judged: Judged
    # A placed replica saf up moved here because its node was lost: that node (docs/placement.md)
    moved_from: str | None = None


@dataclass
class ClusterStatus:
    cluster: str
    nodes: list[NodeRow] = field(default_factory=list)
    ray: list[RayRow] = field(default_factory=list)
    ray_declared: bool = False
    ray_problem: str = ""  # why Ray could not be read (not running, dashboard silent)
    services: list[ServiceRow] = field(default_factory=list)
    models: list[ModelRow] = field(default_factory=list)

    def judged(self) -> list[Judged]:
        rows: list[NodeRow | RayRow | ServiceRow | ModelRow] = [
            *self.nodes, *self.ray, *self.services, *self.models]
        return [r.judged for r in rows]

    @property
    def as_declared(self) -> bool:
        return all(j.fine for j in self.judged())

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(VERDICTS, 0)
        for judged in self.judged():
            out[judged.verdict] += 1
        return {k: v for k, v in out.items() if v}

    def to_json(self) -> dict[str, Any]:
        def rows(items: list[Any]) -> list[dict[str, Any]]:
            out = []
            for item in items:
                data = asdict(item)
                judged = data.pop("judged")
                out.append({**data, "verdict": judged["verdict"], "why": judged["why"]})
            return out
        return {"cluster": self.cluster, "as_declared": self.as_declared,
                "counts": self.counts(), "nodes": rows(self.nodes),
                "ray": {"declared": self.ray_declared, "problem": self.ray_problem,
                        "nodes": rows(self.ray)},
                "services": rows(self.services), "models": rows(self.models)}


def ray_verdict(declared: dict[str, float], found: dict[str, float] | None,
                problem: str, persist: bool = False, kept: bool | None = None,
                disabled: bool = False) -> Judged:
    """One node's Ray: alive with at least the declared amount of each declared resource;
    with `persist`, kept by its service `ray` (`kept`: True under the init system, False
    under saf's supervisor, None when no such service is installed)."""
    if found is None:
        return Judged("down", problem) if problem else Judged("missing", "no ALIVE Ray node")
    short = [f"{k} {found.get(k, 0):g} (declared {v:g})" for k, v in sorted(declared.items())
             if found.get(k, 0) < v]
    if short:
        return Judged("differs", ", ".join(short))
    if persist and disabled:
        return Judged("differs", f"saf-ray is {DISABLED}")
    if persist and kept is None:
        return Judged("differs", "persist = true, but no service saf-ray keeps it (started "
                      "by hand or by ray-up)")
    if persist and not kept:
        return Judged("not kept across reboots")
    return Judged("as declared")


def service_verdict(state: str, active: bool, kept: bool, check: str | None,
                    differs: list[str] | None = None, disabled: bool = False) -> Judged:
    """`differs`: what of the installed unit differs from the declaration (command, env,
    restart, settings); `disabled`: its unit is installed but not enabled (it would not
    start at boot)."""
    if state == "absent":
        return Judged("missing", "not installed")
    if not active:
        return Judged("down", state)
    if differs:
        return Judged("differs", f"{', '.join(differs)} "
                      f"{'differs' if len(differs) == 1 else 'differ'} from saf.toml")
    if check is not None and check != "ok":
        return Judged("differs", f"check {check}")
    if disabled:
        return Judged("differs", DISABLED)
    return Judged("as declared") if kept else Judged("not kept across reboots")
