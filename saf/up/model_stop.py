"""A step that stops one declared model's server on a node (for `saf down`).

Built only by saf.up.compile, never written in a recipe file: `saf down` needs to stop what
the `model` step started, and nothing else. The node's records say what runs there: the
model's server is the one on its port kept as service `model-NAME` (persist, the default of
`saf up`), or a detached one (~/.saf/serve/PORT.json) serving the declared model. The
service goes first (stopped, disabled, removed: else its keeper would start it again), then
the server and its record. A node where the model does not run is left alone, whatever else
serves on that port (a model placed by saf may have been anywhere, so `saf down` asks every
node), and a second `saf down` changes nothing.
"""

from __future__ import annotations

from saf.inference.node import Target, list_servers, stop_server
from saf.inference.records import Endpoint
from saf.recipe.events import StepStatus
from saf.recipe.kinds.base import (
    Fail,
    Kind,
    KindParams,
    Outcome,
    Plan,
    StepContext,
    run_in_order,
)
from saf.recipe.kinds.kept import removal
from saf.recipe.kinds.model_kept import service_name


class ModelStopParams(KindParams):
    port: int


class ModelStop(Kind[list[str]]):  # its plan's data: the service's removal commands
    name = "model_stop"
    Params = ModelStopParams
    supports_become = False

    def __init__(self, model: str, port: int, serves: str = "",
                 marked: str | None = None) -> None:
        self.model = model  # the declared model's name: its server is service model-NAME
        self.port = port
        self.serves = serves  # what it serves (its `model`): a detached server's record says
        # A detached server saf up left that saf.toml no longer declares (saf.up.orphans):
        # the one its record marks as this cluster's model `model`; no service is touched
        # (one named model-NAME may be another declaration's).
        self.marked = marked

    @classmethod
    def parse(cls, params: ModelStopParams, fail: Fail) -> ModelStop:
        return cls("", params.port)

    def templates(self) -> list[tuple[str, str]]:
        return []

    def describe(self) -> str:
        return f"stop model {self.model} (port {self.port})"

    @staticmethod
    def _target(ctx: StepContext) -> Target:
        return Target(ctx.node.name, ctx.node.python,
                      lambda command, timeout: ctx.run(command, quiet=True))

    def _mine(self, endpoints: list[Endpoint]) -> list[Endpoint]:
        """This model's server among the node's: on its port, kept as its service, or
        detached and serving the declared model."""
        service = service_name(self.model)
        if self.marked is not None:
            return [e for e in endpoints if e.port == self.port and not e.kept
                    and e.mark is not None and e.mark.cluster == self.marked
                    and e.mark.model == self.model]
        return [e for e in endpoints if e.port == self.port
                and (e.kept == service or not e.kept and e.model == self.serves)]

    async def plan(self, ctx: StepContext) -> Plan[list[str]]:
        servers = await list_servers(self._target(ctx))
        manager, down = await removal(ctx, service_name(self.model)) \
            if self.marked is None else (None, [])
        here = self._mine(list(servers.endpoints))
        if not here and not down:
            return Plan(False, f"model {self.model} does not run here (port {self.port})")
        stop = [f"stop {here[0].engine} serving {here[0].model} (pid {here[0].pid}, "
                f"{here[0].state})"] if here else []
        what = ([f"stop, disable and remove saf-{service_name(self.model)} "
                 f"({manager.describe()})"] if down and manager else []) + stop
        return Plan(True, "would " + ", then ".join(what), [*down, *stop], list(down))

    async def apply(self, ctx: StepContext, plan: Plan[list[str]]) -> Outcome:
        down = plan.given()
        failed = await run_in_order(ctx, down)
        if failed is not None:
            return failed.outcome(f"removing saf-{service_name(self.model)}")
        # Only this model's record is on the port (one record a port): stop it and forget it.
        mine = self._mine(list((await list_servers(self._target(ctx))).endpoints))
        was = await stop_server(self._target(ctx), self.port) if mine else None
        left = [e for e in self._mine(list((await list_servers(self._target(ctx))).endpoints))
                if e.up]
        if left:
            return Outcome(StepStatus.FAILED, f"port {self.port} still serves "
                           f"{left[0].model} (pid {left[0].pid}) after the stop")
        stopped = f"stopped {was.engine} (pid {was.pid})" if was else "stopped"
        return Outcome(StepStatus.CHANGED, stopped + (
            f", removed saf-{service_name(self.model)}" if down else ""), 0)
