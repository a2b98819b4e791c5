"""kind = "mtu": set the MTU of the interface that carries each node's cluster address (and
on macOS, when asked, its media), as one transaction over the step's nodes.

On every node that changes, a revert is armed first (saf.jumbo.revert: a detached timer that
restores the old MTU unless saf confirms in time), then the change is made. Saf confirms only
after it reached every changed node again on a new connection AND a don't-fragment ping of the
largest payload passed between every pair of the step's nodes; otherwise the revert fires on
every node (at once where saf can still reach the node, by its timer where it cannot) and the
step says which links dropped the frames. Nodes already at the MTU check their links to each
other the same way (a fact), so a rerun proves the cluster still carries jumbo frames.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from saf.connect.base import Connector
from saf.errors import ConnectError
from saf.jumbo import dfping, revert
from saf.jumbo.changes import Change, change
from saf.jumbo.facts import SCRIPT, NodeNet, nm_connection_command, read
from saf.jumbo.iface import FactError
from saf.jumbo.rendezvous import Missing, Phase
from saf.numbers import number_problem
from saf.recipe.events import StepStatus
from saf.recipe.kinds.base import (
    Fail,
    Kind,
    KindParams,
    Outcome,
    Plan,
    StepContext,
    StepFailed,
    Value,
    written,
)
from saf.recipe.schema import Text

# How long the nodes wait for each other's facts (a node that cannot be reached fails first,
# by its connect timeout).
PLAN_WAIT = 120.0
# Confirming this close to the revert's deadline would race the timer: give up instead.
CONFIRM_MARGIN = 0.5
# How long after the deadline the nodes still wait for each other's findings.
LATE_REPORT = 5.0


@dataclass
class NodePlan:
    net: NodeNet
    mtu: int
    change: Change | None
    seconds: float = 30.0  # confirm_within


Plans = dict[str, NodePlan | Exception]  # node -> its plan, or why it has none

@dataclass
class Checked:
    """What one changed node found after the change."""

    reached: bool
    why: str = ""
    pings: dict[str, dfping.PingResult] = field(default_factory=dict)  # peer name -> result


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise StepFailed(f"confirm_within {value!r} is not a number of seconds") from None
    problem = number_problem(seconds, low=2, high=3600)
    if problem:
        raise StepFailed(f"confirm_within {problem}")
    return seconds


def _flag(value: str) -> bool:
    if value.strip().lower() not in ("true", "false"):
        raise StepFailed(f"persist {value!r} is not true or false")
    return value.strip().lower() == "true"


def _mtu_value(value: str) -> int:
    try:
        mtu = int(value)
    except ValueError:
        raise StepFailed(f"mtu {value!r} is not a whole number") from None
    problem = number_problem(mtu, low=1280, high=65535, integer=True)
    if problem:
        raise StepFailed(f"mtu {problem}")
    return mtu


_CHECKS: dict[str, Callable[[str], object]] = {"mtu": _mtu_value, "confirm_within": _seconds,
                                               "persist": _flag}


class MtuParams(KindParams):
    # mtu, confirm_within and persist may be {vars}; parse checks a literal one (_CHECKS).
    mtu: Value = "9000"  # the MTU to set
    interface: Text | None = None  # default: the one carrying the node's cluster address
    media: Text | None = None  # macOS: the media to select too, e.g. "10Gbase-T <full-duplex>"
    confirm_within: Value = "30"  # seconds before the armed revert fires
    persist: Value = "true"  # keep the MTU over a reboot through netplan or NetworkManager


class Mtu(Kind[NodePlan]):
    name = "mtu"
    forms = {"mtu": "count", "confirm_within": "number", "persist": "bool",
             "interface": "interface", "media": "line"}
    Params = MtuParams
    collective = True
    own_channels = True  # a change of the path it runs over: its commands keep their channels

    def __init__(self, mtu: str, interface: str | None, media: str | None,
                 confirm_within: str, persist: str) -> None:
        self.mtu = mtu
        self.interface = interface
        self.media = media
        self.confirm_within = confirm_within
        self.persist = persist

    @classmethod
    def parse(cls, params: MtuParams, fail: Fail) -> Mtu:
        values: dict[str, str] = {}
        for key in ("mtu", "confirm_within", "persist"):
            raw = written(getattr(params, key))
            if "{" not in raw:
                try:
                    _CHECKS[key](raw)
                except StepFailed as exc:
                    raise fail(key, str(exc)) from None
            values[key] = raw
        return cls(values["mtu"], params.interface, params.media, values["confirm_within"],
                   values["persist"])

    def templates(self) -> list[tuple[str, str]]:
        out = [("mtu", self.mtu), ("confirm_within", self.confirm_within),
               ("persist", self.persist)]
        out += [(k, v) for k, v in (("interface", self.interface), ("media", self.media)) if v]
        return out

    def describe(self) -> str:
        return (f"MTU {self.mtu} on the cluster interface, kept only if don't-fragment pings "
                "pass between every pair (a revert is armed first)")

    # -- facts ------------------------------------------------------------------------------
    async def _facts(self, ctx: StepContext) -> NodePlan:
        mtu = _mtu_value(ctx.render(self.mtu, shell=False))
        seconds = _seconds(ctx.render(self.confirm_within, shell=False))
        persist = _flag(ctx.render(self.persist, shell=False))
        # An empty interface or media (a variable left at "") means: find it / leave it.
        interface = ctx.render(self.interface, shell=False).strip() if self.interface else ""
        media = ctx.render(self.media, shell=False).strip() if self.media else ""
        wanted = await _resolve(ctx.node.host)
        result = await ctx.run(SCRIPT, quiet=True)
        if not result.ok:
            raise StepFailed(f"could not read the node's interfaces ({result.stderr.strip()})")
        try:
            net = read(result.stdout, wanted, interface=interface or None)
        except FactError as exc:
            raise StepFailed(str(exc)) from None
        if media and net.os != "macos":
            raise StepFailed("media is set by networksetup on macOS only; on Linux set the "
                            "link's speed with ethtool")
        connection = None
        if net.manager == "networkmanager":
            found = await ctx.run(nm_connection_command(net.found.interface.name), quiet=True)
            connection = found.stdout.strip() or None
        return NodePlan(net, mtu, change(net, mtu, media=media or None,
                                         nm_connection=connection, persist=persist), seconds)

    async def plan(self, ctx: StepContext) -> Plan[NodePlan]:
        rv = await ctx.together(_meeting)
        me = ctx.node.name
        rv.plan.expect([p.name for p in ctx.step_nodes])
        try:
            mine = await self._facts(ctx)
        except BaseException as exc:
            rv.plan.arrive(me, exc if isinstance(exc, Exception) else Missing("stopped"))
            raise
        rv.plan.arrive(me, mine)
        plans = await rv.plan.wait(PLAN_WAIT)
        rv.plans = plans
        others = {n: p for n, p in plans.items() if n != me and isinstance(p, NodePlan)}
        if mine.change is None:
            return await self._probe(ctx, mine, others)
        try:
            pings = [dfping.ping_command(mine.net.os, p.net.found.address, mine.mtu)
                     + f"  # {n}" for n, p in others.items()]
        except ValueError as exc:
            raise StepFailed(str(exc)) from None
        commands = [f"arm the revert ({mine.seconds:g} s, then: "
                    + "; ".join(mine.change.restore) + ")",
                    *mine.change.apply,
                    "reach the node again on a new connection",
                    *pings,
                    "confirm (disarm the revert) once every pair passed",
                    *mine.change.persist]
        reason = "; ".join(mine.change.what) + f" ({mine.change.persist_note})"
        return Plan(True, reason, commands, mine)

    async def _probe(self, ctx: StepContext, mine: NodePlan,
                     others: dict[str, NodePlan]) -> Plan[NodePlan]:
        """A node already at the MTU: ping the peers that are too (those that change are
        checked by the change itself)."""
        iface = mine.net.found.interface.name
        peers = {n: p for n, p in others.items() if p.change is None}
        if not peers:
            return Plan(False, f"MTU {mine.mtu} already on {iface}")
        results = await _ping(ctx, mine, peers, None, timeout=15)
        if results is None:
            raise StepFailed("the node's shell did not answer the ping check")
        size = dfping.payload(mine.mtu, mine.net.found.address)
        bad = [f"{ctx.node.name}↔{n}" for n, r in results.items() if not r.ok]
        if bad:
            raise StepFailed(f"MTU {mine.mtu} on {iface}, but the links {', '.join(bad)} drop "
                            f"{size}-byte don't-fragment pings (a switch or port without "
                            "jumbo frames?)", [f"{n}: {r.detail}" for n, r in results.items()
                                                if not r.ok])
        return Plan(False, f"MTU {mine.mtu} already on {iface}; {size}-byte don't-fragment "
                    f"pings pass to {', '.join(sorted(peers))}")

    # -- the transaction ----------------------------------------------------------------------
    async def apply(self, ctx: StepContext, plan: Plan[NodePlan]) -> Outcome:
        rv = await ctx.together(_meeting)
        plans = rv.plans
        changing = [n for n, p in plans.items() if isinstance(p, NodePlan) and p.change]
        phases: tuple[Phase[bool] | Phase[Checked], ...] = (rv.applied, rv.checked)
        for phase in phases:
            phase.expect(changing)
        try:
            return await self._transaction(ctx, plan.given(), rv, plans)
        finally:
            for phase in phases:
                if not phase.arrived(ctx.node.name):
                    phase.arrive(ctx.node.name, Missing("stopped"))

    async def _transaction(self, ctx: StepContext, mine: NodePlan, rv: _Meeting,
                           plans: Plans) -> Outcome:
        me = ctx.node.name
        assert mine.change is not None
        unread = sorted(n for n, p in plans.items() if not isinstance(p, NodePlan))
        if unread:
            return Outcome(StepStatus.FAILED, f"not changed: the facts of {', '.join(unread)} "
                           "could not be read, so not every pair could be checked")
        deadline = time.monotonic() + mine.seconds
        # One call: arm, and only once the timer runs, change.
        done = await ctx.run(revert.arm(mine.seconds, mine.change.restore) + "\n"
                             + " && ".join(mine.change.apply), quiet=True, timeout=20)
        folder = revert.armed_folder(done.stdout)
        if folder is None:
            rv.applied.arrive(me, StepFailed("no revert"))
            return Outcome(StepStatus.FAILED, "not changed: the revert could not be armed "
                           f"({done.stderr.strip() or done.exit_status})", tail=done.tail())
        if not done.ok:
            rv.applied.arrive(me, StepFailed("change failed"))
            await _fire(ctx, folder, None)
            back = await _reverted(ctx, folder, deadline)
            why = done.stderr.strip().splitlines()[-1:] or [f"exit {done.exit_status}"]
            return Outcome(StepStatus.FAILED, f"the change failed ({why[0]}); {back}",
                           exit_status=done.exit_status, tail=done.tail())
        rv.applied.arrive(me, True)
        applied = await rv.applied.wait(_left(deadline))
        fresh = ctx.fresh_connector()
        try:
            check = await self._check(ctx, mine, plans, fresh, deadline, applied)
            rv.checked.arrive(me, check)
            # Past the deadline nothing can be confirmed, but a late node's findings (which
            # links failed) are still worth the wait: its revert has fired meanwhile anyway.
            checks = await rv.checked.wait(_left(deadline) + LATE_REPORT)
            problems, tail = _problems(checks, plans)
            if not problems and _left(deadline) > CONFIRM_MARGIN:
                return await self._confirm(ctx, mine, folder, fresh, deadline)
            if not problems:
                problems = ["the checks took longer than the revert's "
                            f"{mine.seconds:g} s"]
            if check.reached:  # else the node's own timer reverts it
                await _fire(ctx, folder, fresh)
            back = await _reverted(ctx, folder, deadline)
            return Outcome(StepStatus.FAILED, f"{back}: " + "; ".join(problems), tail=tail)
        finally:
            await fresh.close()

    async def _check(self, ctx: StepContext, mine: NodePlan, plans: Plans,
                     fresh: Connector, deadline: float,
                     applied: dict[str, bool | Exception]) -> Checked:
        failed = sorted(n for n, v in applied.items() if v is not True)
        if failed:
            return Checked(False, f"{', '.join(failed)} could not make the change")
        others = {n: p for n, p in plans.items() if n != ctx.node.name}
        wait = max(min(ctx.node.connect_timeout, _left(deadline) / 2), 0.1)
        try:
            async with asyncio.timeout(wait):
                await fresh.connect()
        except (TimeoutError, ConnectError, OSError) as exc:
            why = (f"no answer within {wait:.1f} s" if isinstance(exc, TimeoutError)
                   else getattr(exc, "detail", "") or str(exc))
            return Checked(False, f"{ctx.node.name} was not reached again after the change "
                           f"({why})")
        # The pings run over the new connection: their output is the proof it works.
        results = await _ping(ctx, mine, others, fresh, timeout=_left(deadline))
        if results is None:
            return Checked(False, f"{ctx.node.name} was reached again, but its commands "
                           "did not answer")
        return Checked(True, "", results)

    async def _confirm(self, ctx: StepContext, mine: NodePlan, folder: str,
                       fresh: Connector, deadline: float) -> Outcome:
        assert mine.change is not None
        done = await ctx.run(revert.confirm(folder), via=fresh, quiet=True,
                             timeout=max(_left(deadline), 1.0))
        if revert.CONFIRMED not in done.stdout:
            back = await _reverted(ctx, folder, deadline)
            return Outcome(StepStatus.FAILED, f"every pair passed, but the revert fired before saf "
                           f"could confirm; {back}")
        size = dfping.payload(mine.mtu, mine.net.found.address)
        message = ("; ".join(mine.change.what) + f"; {size}-byte don't-fragment pings passed "
                   "between every pair; confirmed")
        if mine.change.persist:
            kept = await ctx.run(" && ".join(mine.change.persist), via=fresh, timeout=60)
            if not kept.ok:
                return Outcome(StepStatus.FAILED, message + ", but making it persistent failed",
                               exit_status=kept.exit_status, tail=kept.tail())
        return Outcome(StepStatus.CHANGED, message + f" ({mine.change.persist_note})",
                       exit_status=0)


@dataclass
class _Meeting:
    """Where the nodes of one mtu step wait for each other: each phase typed by what its
    nodes bring (an Exception when a node failed, a Missing when it never came)."""

    plan: Phase[NodePlan] = field(default_factory=Phase)
    applied: Phase[bool] = field(default_factory=Phase)  # True: the change is made
    checked: Phase[Checked] = field(default_factory=Phase)
    plans: Plans = field(default_factory=dict)  # what each node found, once all planned


async def _meeting(fleet: Any, nodes: Any, say: Any) -> _Meeting:
    """The step's one meeting: `together` makes it once and hands it to every node."""
    return _Meeting()


def _left(deadline: float) -> float:
    return deadline - time.monotonic()


async def _resolve(host: str) -> list[str]:
    """The inventory host's addresses as the operator resolves them (none for an alias that
    only ~/.ssh/config knows: the node's SSH server then says where it was reached)."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None)
    except OSError:
        return []
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def _ping(ctx: StepContext, mine: NodePlan, peers: Plans | dict[str, NodePlan],
                via: Connector | None, *, timeout: float) -> dict[str, dfping.PingResult] | None:  # noqa: ASYNC109 - stops the command, returns its output so far with timed_out set
    """DF pings from this node to each peer's cluster address: peer name -> result (None
    when the node's shell did not answer at all)."""
    addresses = {p.net.found.address: n for n, p in peers.items() if isinstance(p, NodePlan)}
    try:
        script = dfping.pings_script(mine.net.os, list(addresses), mine.mtu)
    except ValueError as exc:
        raise StepFailed(str(exc)) from None
    try:
        result = await ctx.run(script, via=via, quiet=True, timeout=max(timeout, 1.0))
    except (ConnectError, OSError):
        return None
    if dfping.ANSWER not in result.stdout.splitlines():
        return None
    parsed = dfping.parse_pings(result.stdout, list(addresses))
    return {addresses[a]: r for a, r in parsed.items()}


def _problems(checks: dict[str, Checked | Exception], plans: Plans
              ) -> tuple[list[str], list[str]]:
    """What stands in the way of confirming, and a line per failed ping."""
    problems: list[str] = []
    tail: list[str] = []
    bad_links: set[tuple[str, str]] = set()
    size = None
    for name, check in sorted(checks.items()):
        if isinstance(check, Missing):
            problems.append(str(check))
        elif isinstance(check, Checked):
            if not check.reached:
                problems.append(check.why)
            for peer, result in sorted(check.pings.items()):
                if not result.ok:
                    low, high = sorted((name, peer))
                    bad_links.add((low, high))
                    tail.append(f"{name} -> {peer}: {result.detail}")
            plan = plans.get(name)
            if isinstance(plan, NodePlan):
                size = dfping.payload(plan.mtu, plan.net.found.address)
        else:
            problems.append(f"{name}: {check}")
    if bad_links:
        links = ", ".join(f"{a}↔{b}" for a, b in sorted(bad_links))
        problems.append(f"the links {links} dropped {size}-byte don't-fragment pings "
                        "(a switch or port without jumbo frames?)")
    return problems, tail


async def _fire(ctx: StepContext, folder: str, via: Connector | None) -> None:
    """Revert now rather than at the timer's deadline, where the node can be reached."""
    try:
        await ctx.run(revert.fire_now(folder), via=via, quiet=True, timeout=5)
    except (ConnectError, OSError):
        pass  # the timer reverts by itself


async def _reverted(ctx: StepContext, folder: str, deadline: float) -> str:
    """Wait (a new connection per try: the node may have been cut off until the revert) until
    the timer has restored the node, and say so."""
    give_up = deadline + 30.0
    last = "the node was not reached"
    while True:
        conn = ctx.fresh_connector()
        try:
            async with asyncio.timeout(max(min(5.0, give_up - time.monotonic()), 0.5)):
                await conn.connect()
                result = await ctx.run(revert.status(folder), via=conn, quiet=True)
            first = result.stdout.strip().splitlines()[:1]
            if first and first[0].startswith(revert.REVERTED):
                code = first[0].split()[-1]
                return ("reverted" if code == "0"
                        else f"the revert ran but failed (exit {code})")
            if first and first[0] == revert.GONE:
                return "the revert's folder is gone (reverted or confirmed meanwhile)"
            last = "the revert had not run yet"
        except (TimeoutError, ConnectError, OSError) as exc:
            last = f"the node was not reached ({getattr(exc, 'detail', '') or type(exc).__name__})"
        finally:
            await conn.close()
        if time.monotonic() > give_up:
            return f"not known to be reverted: {last}"
        await asyncio.sleep(0.3)
