"""kind = "ray_start": start Ray on every node of the step, the head first, each worker as soon
as the head answers, all checked before anything starts.

One step runs on the head and the workers together. Every node gathers its facts at once
(saf.ray.node_probe: Python, Ray, addresses, who holds the ports, whether Ray runs and with
what settings); then each node waits for the head's facts to decide its exact `ray start`
(saf.ray.command), and the step refuses, naming the node, when a port is taken, a version
differs, a worker cannot reach the head's port, or the dashboard would listen on loopback on a
cluster of several machines. A refused node stops the head from starting. `--check` shows
each node's command. After starting, each node waits until the dashboard (through an SSH
forward to the head) lists it ALIVE; one that does not join fails with its Ray log's tail,
and the head reports the cluster's totals.

A node already running with the same settings is `skipped`; with other settings it fails
saying what differs, unless `restart` is true.

This is where the Ray head is started: open it first (docs/architecture.md, "Where is it
done"). The path, in the order it is called: `saf run ray-up` (recipes/ray-up.toml, one
`ray_start` step) goes through saf.recipe.run and saf.recipe.runner to `RayStart.plan` on
every node at once; `_decide` has saf.ray.node_call run saf.ray.node_probe's `facts` on the
node (the answer checked by saf.ray.facts) and asks saf.ray.command for the node's exact
`ray start` or its refusal; `RayStart.apply` has saf.ray.node_call run node_probe's `start`
(the head first, each worker once the head answers), then waits through saf.ray.dashboard, on
an SSH forward to the head, until saf.ray.status lists the node ALIVE.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass, field
from typing import Annotated, Any

from msgspec import Meta

from saf.cluster.service import only_mark_differs, read_logs
from saf.cluster.units import UnitError
from saf.connect.base import RunResult
from saf.deadline import within
from saf.errors import RayError
from saf.format import fmt_bytes, fmt_some
from saf.inventory.model import Node
from saf.numbers import parse_port
from saf.ray import command as rc
from saf.ray.answers import Probed, Started, Stopped, Tail
from saf.ray.dashboard import Dashboard, through_forward
from saf.ray.facts import NodeFacts
from saf.ray.node_call import call, node_facts
from saf.ray.status import RayStatus, read_status
from saf.recipe.events import StepStatus
from saf.recipe.kinds.base import (
    Fail,
    Kind,
    KindParams,
    Outcome,
    Plan,
    StepContext,
    run_in_order,
    written,
)
from saf.recipe.kinds.kept import Kept, kept
from saf.recipe.kinds.ray_kept import ray_spec, record_command

# Ray's log lines of level error and worse ("[2026-11-28 22:56:16,139 C 2751 2751] ...").
_ERROR_LINE = re.compile(r"^\[[0-9-]+ [0-9:,]+ [ECF] \d+ \d+\]")
WAIT_PEERS = 300.0  # seconds a node waits for the others' facts and decisions


@dataclass(frozen=True)
class StartWrote:
    """What a node's `ray start` left to read when it fails: its raylet's log, and the
    node's clock when the start began (older logs say nothing about it)."""

    raylet_log: str | None
    since: float | None


@dataclass
class _Decision:
    start: rc.StartPlan | None = None
    needed: bool = False
    refused: str | None = None
    stop_first: bool = False
    kept: Kept | None = None  # persist = true: the service that runs `ray start --block`


@dataclass
class _State:
    """What the nodes of one ray_start step share in one run."""

    facts: dict[str, asyncio.Future[NodeFacts]] = field(default_factory=dict)
    decided: dict[str, asyncio.Future[_Decision]] = field(default_factory=dict)
    started: dict[str, asyncio.Future[str]] = field(default_factory=dict)


def _settle(fut: asyncio.Future[Any], value: Any = None,
            error: BaseException | None = None) -> None:
    if fut.done():
        return
    if error is not None:
        fut.set_exception(error)
        fut.exception()  # marked retrieved: a waiter may never come
    else:
        fut.set_result(value)


def settings_of(ctx: StepContext, kind: RayStart) -> tuple[rc.RaySettings | None, str | None]:
    def integer(key: str, template: str) -> int:
        try:
            return parse_port(ctx.render(template, shell=False))
        except ValueError as exc:
            raise ValueError(f"{key} {exc}") from None
    try:
        restart = ctx.render(kind.restart, shell=False).strip().lower()
        if restart not in ("true", "false", "yes", "no", "1", "0", ""):
            raise ValueError(f"restart must be true or false, not {restart!r}")
        persist = ctx.render(kind.persist, shell=False).strip().lower()
        if persist not in ("true", "false", "yes", "no", "1", "0", ""):
            raise ValueError(f"persist must be true or false, not {persist!r}")
        temp_dir = ctx.render(kind.temp_dir, shell=False).strip() or rc.DEFAULT_TEMP_DIR
        if not temp_dir.startswith("/"):
            raise ValueError(f"temp_dir must be an absolute path, not {temp_dir!r}")
        return rc.RaySettings(
            port=integer("port", kind.port),
            dashboard_host=ctx.render(kind.dashboard_host, shell=False).strip(),
            dashboard_port=integer("dashboard_port", kind.dashboard_port),
            temp_dir=temp_dir, restart=restart in ("true", "yes", "1"),
            persist=persist in ("true", "yes", "1")), None
    except ValueError as exc:
        return None, str(exc)


async def wait_alive(dashboard: Dashboard, names: list[str], timeout: float) -> RayStatus:  # noqa: ASYNC109 - ends with what came by then, where asyncio.timeout would raise
    """Poll the dashboard until every named node is ALIVE; the last status read either way."""
    deadline = time.monotonic() + timeout
    status: RayStatus | None = None
    while True:
        try:
            status = await read_status(dashboard, jobs=False)
            alive = {n.name for n in status.alive}
            if all(name in alive for name in names):
                return status
        except RayError:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            assert status is not None
            return status
        await asyncio.sleep(0.5)


def ray_address(status: RayStatus, name: str, asked: str) -> str:
    """The address Ray uses for the node (its node_ip_address, what `saf ray status`
    shows), saying so when it is not the `--node-ip-address` saf gave."""
    used = next((n.address for n in status.alive if n.name == name and n.address), asked)
    if used == asked:
        return used
    return f"{used} (Ray's node_ip_address for it; saf gave --node-ip-address={asked})"


def totals(status: RayStatus) -> str:
    gpus = status.total("GPU")
    return (f"{len(status.alive)} node{'s' if len(status.alive) != 1 else ''} ALIVE: "
            f"{status.total('CPU'):g} CPUs, {gpus:g} GPUs, {fmt_bytes(status.memory)} memory")


# Each may be a {var}; its form (`forms`) is checked on every node once put in.
Word = Annotated[str | int | bool, Meta(description="a string, a whole number or true/false")]


class RayStartParams(KindParams):
    port: Word = str(rc.DEFAULT_PORT)  # the head's GCS port (6380: 6379 is Redis's)
    # Where the dashboard listens ("": loopback on one machine, the head's cluster address on
    # several).
    dashboard_host: Word = ""
    dashboard_port: Word = str(rc.DEFAULT_DASHBOARD_PORT)  # the dashboard's port
    temp_dir: Word = rc.DEFAULT_TEMP_DIR  # Ray's temp folder on every node
    restart: Word = "false"  # true: restart nodes that run with other settings
    # true: `ray start --block` kept by the node's init system as service `ray` (unit
    # saf-ray, restart on-failure), or saf's supervisor where there is none.
    persist: Word = "false"
    join_timeout: Annotated[float, Meta(ge=1, le=3600)] = 90  # seconds to show ALIVE
    # With persist: saf up's mark on the service (the cluster whose declaration keeps it,
    # saf.cluster.marked); a plain `saf run` leaves it unmarked, never an orphan.
    up: Word | None = None


class RayStart(Kind[_Decision]):
    name = "ray_start"
    forms = {"port": "port", "dashboard_host": "host", "dashboard_port": "port",
             "temp_dir": "path", "restart": "bool", "persist": "bool", "up": "line"}
    Params = RayStartParams
    supports_become = False

    def __init__(self, port: str, dashboard_host: str, dashboard_port: str, temp_dir: str,
                 restart: str, join_timeout: float, persist: str = "false",
                 up: str | None = None) -> None:
        self.port = port
        self.dashboard_host = dashboard_host
        self.dashboard_port = dashboard_port
        self.temp_dir = temp_dir
        self.restart = restart
        self.join_timeout = join_timeout
        self.persist = persist
        self.up = up

    @classmethod
    def parse(cls, params: RayStartParams, fail: Fail) -> RayStart:
        return cls(written(params.port), written(params.dashboard_host),
                   written(params.dashboard_port), written(params.temp_dir),
                   written(params.restart), float(params.join_timeout),
                   written(params.persist),
                   written(params.up) if params.up is not None else None)

    def templates(self) -> list[tuple[str, str]]:
        return [("port", self.port), ("dashboard_host", self.dashboard_host),
                ("dashboard_port", self.dashboard_port), ("temp_dir", self.temp_dir),
                ("restart", self.restart), ("persist", self.persist),
                *([("up", self.up)] if self.up is not None else [])]

    def describe(self) -> str:
        return "start Ray: the head, then each worker joining it"

    # -- deciding ---------------------------------------------------------------------------
    async def plan(self, ctx: StepContext) -> Plan[_Decision]:
        state = ctx.shared(_State)
        me = ctx.node
        for peer in ctx.step_nodes:
            for table in (state.facts, state.decided, state.started):
                table.setdefault(peer.name, asyncio.get_running_loop().create_future())
        mine = state.facts[me.name]
        decided = state.decided[me.name]
        try:
            decision = await self._decide(ctx, state)
        except RayError as exc:
            decision = _Decision(refused=str(exc))
            _settle(mine, error=RayError(f"{me.name} did not answer ({exc})"))
        except BaseException as exc:
            _settle(mine, error=RayError(f"{me.name} did not answer ({exc})"))
            _settle(decided, _Decision(refused=f"did not answer ({exc})"))
            _settle(state.started[me.name], error=RayError(f"{me.name} did not start"))
            raise
        _settle(decided, decision)
        if decision.refused:
            _settle(state.started[me.name], error=RayError(f"{me.name} was refused"))
            return Plan(True, refusal=decision.refused)
        if me.is_head and decision.needed:
            # Nothing starts while another node is refused.
            refused = await self._others_refused(ctx, state)
            if refused:
                _settle(state.started[me.name], error=RayError("the head did not start"))
                return Plan(True, refusal="not started: " + fmt_some(refused, 3))
        start = decision.start
        assert start is not None
        if not decision.needed:
            _settle(state.started[me.name], start.node_ip)
            if decision.kept:
                return Plan(False, "Ray is running with the same settings, kept by "
                            f"{decision.kept.manager.describe()} as {decision.kept.spec.label}")
            return Plan(False, "Ray is running with the same settings")
        if decision.kept:
            kept_by = decision.kept
            commands = ([f"stop the Ray running outside {kept_by.spec.label}"]
                        if decision.stop_first else []) + kept_by.commands
            return Plan(True, f"{kept_by.why}: `ray start --block` as {kept_by.spec.label} ("
                        + ("the head" if me.is_head else f"a worker joining "
                           f"{start.head_address}") + ")", commands, decision)
        what = "every Ray process" if me.is_head else "its raylet"
        commands = ([f"stop {what} (then start again)"] if decision.stop_first else []) \
            + [start.shell()]
        reason = ("restart: " if decision.stop_first else "start ") + (
            "the head" if me.is_head else f"a worker joining {start.head_address}")
        return Plan(True, reason, commands, decision)

    async def _others_refused(self, ctx: StepContext, state: _State) -> list[str]:
        others = [p.name for p in ctx.step_nodes if p.name != ctx.node.name]
        done = await within(asyncio.gather(*(state.decided[n] for n in others)),
                                      WAIT_PEERS)
        return [f"{name} is refused ({d.refused})" for name, d in zip(others, done, strict=True)
                if d.refused]

    async def _decide(self, ctx: StepContext, state: _State) -> _Decision:
        me, inventory = ctx.node, ctx.inventory
        settings, problem = settings_of(ctx, self)
        if settings is None:
            raise RayError(problem or "bad settings")
        ports = [settings.port, settings.dashboard_port] if me.is_head else []
        head = inventory.head
        # A worker probes the head's port in the same call when the head's address is known
        # before its facts (most inventories): one round trip less before the head starts.
        early = rc.known_ip(head) if head is not None and not me.is_head else None
        early_target = f"{early}:{settings.port}" if early else None
        facts = await node_facts(ctx.run, me.name, rc.python_of(me), temp_dir=settings.temp_dir,
                                 ports=ports, record=settings.record_path(me.name),
                                 node_dir=rc.node_temp_dir(inventory, me, settings.temp_dir),
                                 probe=[early_target] if early_target else None,
                                 parts="unless_running")
        _settle(state.facts[me.name], facts)
        if head is None:
            return _Decision(refused="no node has role head in the inventory")
        if head.name not in state.facts:
            return _Decision(refused=f"the head {head.name} is not in this run (start Ray "
                                     "on the head and the workers together)")
        try:
            head_facts = await within(asyncio.shield(state.facts[head.name]),
                                                WAIT_PEERS)
        except (RayError, TimeoutError) as exc:
            return _Decision(refused=f"the head {head.name} did not answer ({exc})")
        head_ip, problem = rc.node_ip(head, head_facts)
        if head_ip is None:
            return _Decision(refused=f"the head {head.name}'s address: {problem}")
        why = rc.refusal(inventory, me, facts, head, head_facts, settings)
        if why:
            return _Decision(refused=why)
        start, problem = rc.start_plan(inventory, me, facts, settings, head_ip)
        if start is None:
            return _Decision(refused=problem)
        running = facts.raylet_running and (facts.gcs_running or not me.is_head)
        head_restarts = False
        if not me.is_head:
            head_restarts, unreached = await self._reach_head(ctx, state, head, head_ip,
                                                              settings, facts, early_target)
            if unreached:
                return _Decision(refused=unreached)
        if settings.persist:
            return await self._decide_kept(ctx, facts, settings, start, running, head_restarts)
        if not running:
            # Leftovers of an earlier start: the node's own (its folder, or its machine's
            # whole temp folder when it is alone there) go first.
            alone = not rc.shares_machine(inventory, me)
            return _Decision(start, needed=True, stop_first=facts.ray_processes > 0 and alone
                             or facts.node_processes > 0 and not me.is_head)
        diffs = rc.differences(facts.record, start.record)
        if head_restarts:
            diffs.append("the head restarts")
        if not diffs:
            return _Decision(start, needed=False)
        if not settings.restart:
            return _Decision(refused=("Ray is running with other settings ("
                                      + "; ".join(diffs[:6])
                                      + "); rerun with --var restart=true to restart it"))
        return _Decision(start, needed=True, stop_first=True)

    async def _decide_kept(self, ctx: StepContext, facts: NodeFacts, settings: rc.RaySettings,
                           start: rc.StartPlan, running: bool,
                           head_restarts: bool) -> _Decision:
        """persist = true: the unit (or the supervisor's spec) saf would write against the
        one installed. Nothing to do when it is the same, active and Ray runs; a Ray running
        outside it (a detached start, leftovers) is stopped first."""
        me = ctx.node
        up = None if self.up is None else ctx.render(self.up, shell=False).strip() or None
        spec = ray_spec(ctx.inventory, me, start,
                        rc.node_temp_dir(ctx.inventory, me, settings.temp_dir), up)
        try:
            found = await kept(ctx, spec, force=head_restarts)
            if not found.commands and not running:
                found = await kept(ctx, spec, force=True)  # active, but Ray is not: again
        except UnitError as exc:
            return _Decision(refused=str(exc))
        status = found.found.status
        if found.commands and running and not head_restarts and status.active \
                and only_mark_differs(spec, found.found):
            # A unit an older saf up wrote without its mark: Ray is not restarted for the
            # mark alone (it stays unmarked, so never removed as not declared).
            return _Decision(start, needed=False, kept=found)
        if not found.commands:
            return _Decision(start, needed=False, kept=found)
        if status.active and found.found.installed not in (None, found.text) \
                and not settings.restart:
            diffs = rc.differences(facts.record, start.record) or [f"its {spec.unit} differs"]
            return _Decision(refused=(f"Ray runs under {spec.label} with other settings ("
                                      + "; ".join(diffs[:6])
                                      + "); rerun with --var restart=true to restart it"))
        alone = not rc.shares_machine(ctx.inventory, me)
        stray = not status.active and (facts.ray_processes > 0 and alone
                                       or facts.node_processes > 0 and not me.is_head)
        return _Decision(start, needed=True, stop_first=stray, kept=found)

    async def _reach_head(self, ctx: StepContext, state: _State, head: Node, head_ip: str,
                          settings: rc.RaySettings, facts: NodeFacts,
                          early_target: str | None) -> tuple[bool, str | None]:
        """A worker, once the head has decided: (whether the head restarts, why the worker
        cannot reach the head's port from where it is (a firewall?), or None)."""
        me = ctx.node
        head_decision = await within(asyncio.shield(state.decided[head.name]),
                                               WAIT_PEERS)
        head_restarts = head_decision.needed
        if head_decision.refused and not head_restarts:
            return head_restarts, None  # the head's own refusal says it
        expect_open = not head_restarts
        target = f"{head_ip}:{settings.port}"
        if target == early_target and target in facts.probes:
            seen = facts.probes[target]
        else:
            probed, _ = await call(ctx.run, me.name, rc.python_of(me), Probed,
                                   {"targets": [target], "timeout": 3})
            seen = str(probed.probes.get(target))
        if seen not in (("open",) if expect_open else ("open", "refused")):
            return head_restarts, (f"cannot reach the head's port {head_ip}:{settings.port} "
                                   f"from here ({seen}): a firewall, or the wrong address?")
        return head_restarts, None

    # -- doing ------------------------------------------------------------------------------
    async def apply(self, ctx: StepContext, plan: Plan[_Decision]) -> Outcome:
        state = ctx.shared(_State)
        decision = plan.given()
        start = decision.start
        assert start is not None
        me, head = ctx.node, ctx.inventory.head
        assert head is not None
        settings, _ = settings_of(ctx, self)
        assert settings is not None
        started = state.started[me.name]
        try:
            if not me.is_head:
                try:
                    await within(asyncio.shield(state.started[head.name]),
                                           WAIT_PEERS)
                except (RayError, TimeoutError) as exc:
                    _settle(started, error=RayError(str(exc)))
                    return Outcome(StepStatus.FAILED,
                                   f"not started: the head did not start ({exc})")
            if decision.kept:
                outcome, wrote = await self._start_kept(ctx, settings, decision)
            else:
                outcome, wrote = await self._start(ctx, settings, start, decision.stop_first)
            if outcome is not None:
                _settle(started, error=RayError(outcome.message))
                return outcome
            head_bind = rc.dashboard_bind(settings, start.head_address.rpartition(":")[0],
                                          rc.machines(ctx.inventory) > 1)
            async with through_forward(lambda port, host: ctx.forward(port, host, via=head),
                                       head.host, settings.dashboard_port,
                                       head_bind) as dashboard:
                status = await wait_alive(dashboard, [me.name], self.join_timeout)
                if me.name not in {n.name for n in status.alive}:
                    _settle(started, error=RayError(f"{me.name} did not join"))
                    no_join = await self._no_join(
                        ctx, settings, wrote, f"did not show ALIVE in the dashboard "
                        f"within {self.join_timeout:g} s")
                    if decision.kept:
                        no_join.tail += [f"== {decision.kept.spec.label}'s log"] + \
                            await self._kept_logs(ctx, decision.kept)
                    return no_join
                _settle(started, start.node_ip)
                address = ray_address(status, me.name, start.node_ip)
                if decision.kept:
                    address += (f"; kept by {decision.kept.manager.describe()} as "
                                f"{decision.kept.spec.label}")
                if not me.is_head:
                    return Outcome(StepStatus.CHANGED, f"joined {start.head_address} as {address}",
                                   exit_status=0)
                # The head reports the cluster once every starting worker has had its say;
                # a worker whose step failed is not counted (Ray may list it ALIVE a while).
                workers = [p.name for p in ctx.step_nodes if p.name != me.name]
                decisions = await asyncio.gather(*(state.decided[n] for n in workers))
                waiting = [n for n, d in zip(workers, decisions, strict=True)
                           if d.needed and not d.refused]
                ends = await asyncio.gather(*(state.started[n] for n in waiting),
                                            return_exceptions=True)
                failed = [n for n, end in zip(waiting, ends, strict=True)
                          if isinstance(end, BaseException)]
                status = await read_status(dashboard, jobs=False)
                status.nodes = [n for n in status.nodes if n.name not in failed]
                return Outcome(StepStatus.CHANGED, f"head at {start.head_address} as {address}; "
                               f"{totals(status)}"
                               + (f" (not {fmt_some(failed, 3)}: failed)" if failed else "")
                               + f"; dashboard {dashboard.url}", exit_status=0)
        except RayError as exc:
            # The node's own trouble (an OS error there, a probe that did not answer): its
            # step fails saying so.
            _settle(started, error=RayError(f"{me.name} did not start ({exc})"))
            return Outcome(StepStatus.FAILED, str(exc))
        except BaseException as exc:
            _settle(started, error=RayError(f"{me.name} did not start ({exc})"))
            raise

    async def _start_kept(self, ctx: StepContext, settings: rc.RaySettings,
                          decision: _Decision) -> tuple[Outcome | None, StartWrote]:
        """persist = true: stop a Ray running outside the service, install and (re)start the
        service, and write the record of the settings (as a detached start does)."""
        me, kept_by, start = ctx.node, decision.kept, decision.start
        assert kept_by is not None
        assert start is not None
        node_dir = rc.node_temp_dir(ctx.inventory, me, settings.temp_dir)
        if decision.stop_first:
            await call(ctx.run, me.name, rc.python_of(me), Stopped, {
                "temp_dir": settings.temp_dir, "node_name": me.name, "node_dir": node_dir,
                "sweep": me.is_head or not rc.shares_machine(ctx.inventory, me),
                "record": settings.record_path(me.name)})
        record = record_command(settings.record_path(me.name),
                                json.dumps(start.settings))
        failed = await run_in_order(ctx, [*kept_by.commands, record])
        if failed is not None:
            outcome = failed.outcome(
                f"starting {kept_by.spec.label} under {kept_by.manager.describe()}",
                failed.result.tail() + await self._kept_logs(ctx, kept_by))
            outcome.message = f"{me.name}: {outcome.message}"
            return outcome, StartWrote(None, None)
        return None, StartWrote(None, None)

    @staticmethod
    async def _kept_logs(ctx: StepContext, kept_by: Kept) -> list[str]:
        async def run(command: str) -> RunResult:
            return await ctx.run(command, quiet=True)
        return [line[:1000] for line in await read_logs(run, kept_by.spec, kept_by.manager, 8)]

    async def _start(self, ctx: StepContext, settings: rc.RaySettings, start: rc.StartPlan,
                     stop_first: bool) -> tuple[Outcome | None, StartWrote]:
        """Run the node's `ray start`: (a failed outcome or None, the logs it wrote).
        Workers start at once, also those sharing a machine: each of those has its own
        folder (saf.ray.command.node_temp_dir), so their starts cannot race for names."""
        me = ctx.node
        stop = {"temp_dir": settings.temp_dir, "node_name": me.name,
                "node_dir": rc.node_temp_dir(ctx.inventory, me, settings.temp_dir),
                "sweep": me.is_head or not rc.shares_machine(ctx.inventory, me)}
        if stop_first:
            await call(ctx.run, me.name, rc.python_of(me), Stopped,
                       dict(stop, record=settings.record_path(me.name)))
        args = {"argv": start.argv, "env": start.env, "record": settings.record_path(me.name),
                "settings": start.settings, "temp_dir": stop["node_dir"]}
        for attempt in (1, 2):
            value, result = await call(ctx.run, me.name, rc.python_of(me), Started, args,
                                       quiet=False)
            # `ray start` gives a raylet 30 s (fixed) to register with the GCS; a machine
            # busy enough to miss that gets its leftovers stopped and one more try (not a
            # raylet that crashed: its log says why, and a second start would crash again).
            if value.exit_status == 0 or attempt == 2 or value.raylet_crashed \
                    or "timed out during startup" not in result.stdout + result.stderr:
                break
            await call(ctx.run, me.name, rc.python_of(me), Stopped, stop)
        wrote = StartWrote(value.raylet_log, value.started_at)
        code = value.exit_status
        if code == 0:
            return None, wrote
        record_error = value.record_error
        if record_error is not None:
            folder = settings.record_path(me.name).rpartition("/")[0]
            return Outcome(StepStatus.FAILED, (
                f"{me.name}: Ray started, but saf could not write its record of the settings "
                f"in {folder} ({record_error[:300]}), so that Ray was stopped; is "
                f"{settings.temp_dir} another user's? Pick another with --var temp_dir=..."),
                exit_status=1), wrote
        said = [line for line in result.tail(12) if line.strip()][-1:]
        if value.ended_early:
            said = ["ended by saf once its raylet had crashed (Ray would wait 30 s for it)"]
        elif value.raylet_gone:
            said = ["it said Ray started, but the node's raylet has already exited"]
        outcome = await self._no_join(
            ctx, settings, wrote, f"`ray start` ended with exit status {code}", said)
        outcome.exit_status = code
        return outcome, wrote

    async def _no_join(self, ctx: StepContext, settings: rc.RaySettings,
                       wrote: StartWrote, why: str,
                       said: list[str] | None = None) -> Outcome:
        """A node that did not join: fails with what `ray start` said last, then the end of
        its raylet's log, the newest of its log folder's non-empty .err files (an agent's
        traceback), and the GCS log's lines about it (when the GCS log is on the node), at
        most 12 lines (what the run view shows)."""
        me = ctx.node
        tail = [f"ray start: {line[:1000]}" for line in said or []]
        blocks: list[list[str]] = []  # the log lines of each log shown
        try:
            tailed, _ = await call(ctx.run, me.name, rc.python_of(me), Tail,
                                  {"temp_dir": settings.temp_dir, "lines": 3,
                                   "node_dir": rc.node_temp_dir(ctx.inventory, me,
                                                                settings.temp_dir),
                                   "raylet": wrote.raylet_log, "since": wrote.since,
                                   "node_name": me.name})
            if not tailed.logs:
                tail.append("(no Ray log was written since this start began)")
            for log in tailed.logs[:4]:
                tail.append(f"== {log.path[:500]} ({log.what[:100]})")
                block = [line[:1000] for line in log.lines[-8:]]
                tail += block
                blocks.append(block)
        except RayError as exc:
            tail.append(f"(its Ray logs could not be read: {exc})")
        verb = "did not start" if me.is_head else "did not join"
        # The message stands alone (where only it is shown, it still says what went wrong):
        # what `ray start` said last, and the telling line of its logs or that there was none.
        ending = f"; ray start: {said[-1][:300]}" if said else ""
        logged = [line for block in blocks for line in block]
        if logged:
            errors = [line for line in logged if _ERROR_LINE.match(line)]
            ending += f"; its Ray logs end: {(errors or blocks[0] or logged)[-1][:300]}"
        else:
            notes = [line for line in tail if line.startswith("(")]
            ending += "; " + (notes[-1].strip("()") if notes else
                              "its Ray logs since this start began are empty" if blocks else
                              "no Ray log was written since this start began")
        return Outcome(StepStatus.FAILED, f"{me.name} {verb}: {why}{ending}", tail=tail)
