"""A step that stops one declared model's server on a node (for `saf down`).

Built only by saf.up.compile, never written in a recipe file: `saf down` needs to stop what
the `model` step started (a server saf runs detached, found again from its record
~/.saf/serve/PORT.json), and nothing else. A port with no server of saf's is `skipped`, so a
second `saf down` changes nothing.
"""

from __future__ import annotations

from saf.inference.node import Target, list_servers, stop_server
from saf.recipe.events import StepStatus
from saf.recipe.kinds.base import Fail, Kind, KindParams, Outcome, Plan, StepContext


class ModelStopParams(KindParams):
    port: int


class ModelStop(Kind[None]):
    name = "model_stop"
    Params = ModelStopParams
    supports_become = False

    def __init__(self, model: str, port: int) -> None:
        self.model = model
        self.port = port

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

    async def plan(self, ctx: StepContext) -> Plan[None]:
        servers = await list_servers(self._target(ctx))
        here = [e for e in servers.endpoints if e.port == self.port]
        if not here:
            return Plan(False, f"no model server on port {self.port}")
        return Plan(True, f"would stop {here[0].engine} serving {here[0].model} "
                    f"(pid {here[0].pid}, {here[0].state})")

    async def apply(self, ctx: StepContext, plan: Plan[None]) -> Outcome:
        was = await stop_server(self._target(ctx), self.port)
        if was is None:
            return Outcome(StepStatus.SKIPPED, f"no model server on port {self.port}")
        left = [e for e in (await list_servers(self._target(ctx))).endpoints
                if e.port == self.port and e.up]
        if left:
            return Outcome(StepStatus.FAILED, f"port {self.port} still serves "
                           f"{left[0].model} (pid {left[0].pid}) after the stop")
        return Outcome(StepStatus.CHANGED, f"stopped {was.engine} (pid {was.pid})")
