"""`run = "..."` (kind "shell"): a shell command. It always needs doing unless the step's
`check` or `creates` says otherwise."""

from __future__ import annotations

from typing import Any

from saf.recipe.kinds.base import Fail, Kind, Outcome, Plan, StepContext, text


class Shell(Kind):
    name = "shell"
    keys = {"run": "the shell command (POSIX sh on the node)"}

    def __init__(self, command: str) -> None:
        self.command = command

    @classmethod
    def parse(cls, params: dict[str, Any], fail: Fail) -> Shell:
        return cls(text(params, "run", fail, required=True) or "")

    def templates(self) -> list[tuple[str, str]]:
        return [("run", self.command)]

    def describe(self) -> str:
        first = self.command.strip().splitlines()[0] if self.command.strip() else ""
        return first + (" …" if "\n" in self.command.strip() else "")

    async def plan(self, ctx: StepContext) -> Plan:
        command = ctx.render(self.command)
        return Plan(True, "", [command], command)

    async def apply(self, ctx: StepContext, plan: Plan) -> Outcome:
        return Outcome.from_result(await ctx.run(plan.data))
