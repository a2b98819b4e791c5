"""kind = "ray_stop": stop Ray on the step's nodes and check that none of its processes is
left. The workers stop first, all at once; the head waits for them, then stops. A worker
ends its raylet and the raylet's children, and every process of its own folder (a worker
sharing its machine: saf.ray.command.node_temp_dir); the head, or a node alone on its
machine, ends every process of Ray's temp folder and the node folders in it (GCS,
dashboard, monitors). Only processes
of that temp folder are touched, never another Ray on the same machine (`ray stop` would end
them all). SIGTERM first, SIGKILL after a grace of a few seconds."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from saf.errors import RayError
from saf.format import fmt_some
from saf.ray import command as rc
from saf.ray.answers import Stopped
from saf.ray.node_call import call, node_facts
from saf.recipe.events import StepStatus
from saf.recipe.kinds.base import Fail, Kind, KindParams, Outcome, Plan, StepContext
from saf.recipe.kinds.kept import removal
from saf.recipe.kinds.ray_kept import service_name
from saf.recipe.schema import Text


@dataclass
class _Done:
    """What the nodes of one ray_stop step share in one run: one future per node, settled
    when that node is done (the head waits for the others')."""

    nodes: dict[str, asyncio.Future[None]] = field(default_factory=dict)


@dataclass(frozen=True)
class _Stop:
    """What `plan` found, for `apply`: which processes to end, and the kept service (its
    removal commands, none when there is no such service) to remove first."""

    temp_dir: str
    sweep: bool  # every Ray process of temp_dir, or only this node's raylet and node_dir's
    node_dir: str
    down: list[str]
    service: str


class RayStopParams(KindParams):
    temp_dir: Text = rc.DEFAULT_TEMP_DIR  # Ray's temp folder on the nodes


class RayStop(Kind[_Stop]):
    name = "ray_stop"
    forms = {"temp_dir": "path"}
    Params = RayStopParams
    supports_become = False

    def __init__(self, temp_dir: str) -> None:
        self.temp_dir = temp_dir

    @classmethod
    def parse(cls, params: RayStopParams, fail: Fail) -> RayStop:
        return cls(params.temp_dir)

    def templates(self) -> list[tuple[str, str]]:
        return [("temp_dir", self.temp_dir)]

    def describe(self) -> str:
        return "stop Ray and check that no Ray process is left"

    def _temp_dir(self, ctx: StepContext) -> str:
        temp_dir = ctx.render(self.temp_dir, shell=False).strip() or rc.DEFAULT_TEMP_DIR
        if not temp_dir.startswith("/"):
            raise RayError(f"temp_dir must be an absolute path, not {temp_dir!r}")
        return temp_dir

    @staticmethod
    def _done(ctx: StepContext) -> dict[str, asyncio.Future[None]]:
        """One future per node of the step, settled when that node is done (the head waits
        for the others')."""
        done = ctx.shared(_Done).nodes
        for peer in ctx.step_nodes:
            if peer.name not in done:
                done[peer.name] = asyncio.get_running_loop().create_future()
        return done

    @staticmethod
    def _finish(ctx: StepContext) -> None:
        fut = RayStop._done(ctx)[ctx.node.name]
        if not fut.done():
            fut.set_result(None)

    async def plan(self, ctx: StepContext) -> Plan[_Stop]:
        self._done(ctx)
        try:
            plan = await self._plan(ctx)
        except BaseException:
            self._finish(ctx)
            raise
        if plan.refusal or not plan.needed or ctx.check_mode:
            self._finish(ctx)
        return plan

    async def _plan(self, ctx: StepContext) -> Plan[_Stop]:
        me = ctx.node
        try:
            temp_dir = self._temp_dir(ctx)
            node_dir = rc.node_temp_dir(ctx.inventory, me, temp_dir)
            facts = await node_facts(ctx.run, me.name, rc.python_of(me), temp_dir=temp_dir,
                                     ports=[], node_dir=node_dir)
        except RayError as exc:
            return Plan(True, refusal=str(exc))
        # Ray kept by the init system (ray_start's persist): the service goes first, or it
        # would start Ray again.
        name = service_name(ctx.inventory, me)
        manager, down = await removal(ctx, name)
        sweep = me.is_head or not rc.shares_machine(ctx.inventory, me)
        running = facts.ray_processes if sweep else \
            facts.node_processes + int(facts.raylet_running)
        if not running and not down:
            return Plan(False, "no Ray process of " + temp_dir)
        what = (f"end every Ray process of {temp_dir} ({facts.ray_processes})" if sweep
                else f"end the raylet named {me.name} and its children, and every process "
                     f"of {node_dir} ({facts.node_processes})")
        if down:
            what = f"stop, disable and remove saf-{name} ({manager.describe()}), then {what}"
        return Plan(True, what, [*down, what], _Stop(temp_dir, sweep, node_dir, down, name))

    async def apply(self, ctx: StepContext, plan: Plan[_Stop]) -> Outcome:
        try:
            if ctx.node.is_head:
                done = self._done(ctx)
                await asyncio.gather(*(f for name, f in done.items() if name != ctx.node.name))
            return await self._stop(ctx, plan)
        finally:
            self._finish(ctx)

    async def _stop(self, ctx: StepContext, plan: Plan[_Stop]) -> Outcome:
        me = ctx.node
        data = plan.given()
        down, service = data.down, data.service
        for command in down:
            result = await ctx.run(command, quiet=True)
            if not result.ok:
                return Outcome(StepStatus.FAILED, f"removing saf-{service} failed (exit "
                               f"{result.exit_status})", result.exit_status, result.tail())
        args = dict(temp_dir=data.temp_dir, sweep=data.sweep, node_dir=data.node_dir,
                    node_name=me.name, grace=5,
                    record=f"{data.temp_dir.rstrip('/')}/saf/{me.name}.json")
        value, _ = await call(ctx.run, me.name, rc.python_of(me), Stopped, args)
        if value.left:
            return Outcome(StepStatus.FAILED, f"{len(value.left)} Ray processes are left: "
                           + fmt_some(list(value.left), 3))
        stopped, killed = value.stopped, value.killed
        return Outcome(StepStatus.CHANGED, (f"removed saf-{service}; " if down else "")
                       + f"stopped {stopped} processes"
                       + (f" ({killed} needed SIGKILL)" if killed else ""), exit_status=0)
