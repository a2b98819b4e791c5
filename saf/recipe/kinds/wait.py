"""kind = "wait": run `command` until it succeeds, `tries` times `interval` seconds apart
(e.g. wait for a server to answer). It changes nothing, so it ends `ok`."""

from __future__ import annotations

import asyncio
from typing import Annotated

from msgspec import Meta

from saf.recipe.events import StepStatus
from saf.recipe.kinds.base import Fail, Kind, KindParams, Outcome, Plan, StepContext
from saf.recipe.schema import Text
from saf.recipe.values import COMMAND


class WaitParams(KindParams):
    command: Text  # the command that exits 0 once the wait is over
    tries: Annotated[int, Meta(ge=1, le=100_000)] = 60  # how many times to try
    interval: Annotated[float, Meta(ge=0, le=3600)] = 1.0  # seconds between tries


class Wait(Kind[str]):
    name = "wait"
    forms = {"command": COMMAND}
    Params = WaitParams

    def __init__(self, command: str, tries: int, interval: float) -> None:
        self.command = command
        self.tries = tries
        self.interval = interval

    @classmethod
    def parse(cls, params: WaitParams, fail: Fail) -> Wait:
        return cls(params.command, params.tries, params.interval)

    def templates(self) -> list[tuple[str, str]]:
        return [("command", self.command)]

    def read_only(self) -> bool:
        return True

    def describe(self) -> str:
        return f"wait until `{self.command}` succeeds ({self.tries} × {self.interval:g} s)"

    async def plan(self, ctx: StepContext) -> Plan[str]:
        command = ctx.render(self.command)
        if ctx.check_mode:
            # One probe is a fact; waiting is the action.
            if (await ctx.run(command, quiet=True)).ok:
                return Plan(False, "already succeeds", data=command, done_status=StepStatus.OK)
        return Plan(True, f"would wait for: {command}", [command], command)

    async def apply(self, ctx: StepContext, plan: Plan[str]) -> Outcome:
        result = None
        for attempt in range(self.tries):
            if attempt:
                await asyncio.sleep(self.interval)
            result = await ctx.run(plan.given(), quiet=attempt < self.tries - 1)
            if result.ok:
                return Outcome(StepStatus.OK, f"succeeded after {attempt + 1} tries", exit_status=0)
        assert result is not None
        outcome = Outcome.from_result(result)
        outcome.message = f"still failing after {self.tries} tries ({outcome.message})"
        return outcome
