"""`run = "..."` (kind "shell"): a shell command. It always needs doing unless the step's
`check` or `creates` says otherwise. With `readonly = true` it only reads: it ends `ok`, and
runs under --check too (it is itself the check)."""

from __future__ import annotations

from saf.recipe.events import StepStatus
from saf.recipe.kinds.base import Fail, Kind, KindParams, Outcome, Plan, StepContext
from saf.recipe.schema import Text
from saf.recipe.values import COMMAND


class ShellParams(KindParams):
    run: Text  # the shell command (POSIX sh on the node)
    readonly: bool = False  # true: the command only reads (runs under --check too, ends ok)


class Shell(Kind[str]):
    name = "shell"
    forms = {"run": COMMAND}
    Params = ShellParams

    def __init__(self, command: str, readonly: bool = False) -> None:
        self.command = command
        self.readonly = readonly

    @classmethod
    def parse(cls, params: ShellParams, fail: Fail) -> Shell:
        return cls(params.run, params.readonly)

    def read_only(self) -> bool:
        return self.readonly

    def templates(self) -> list[tuple[str, str]]:
        return [("run", self.command)]

    def describe(self) -> str:
        first = self.command.strip().splitlines()[0] if self.command.strip() else ""
        return first + (" …" if "\n" in self.command.strip() else "")

    async def plan(self, ctx: StepContext) -> Plan[str]:
        command = ctx.render(self.command)
        return Plan(True, "", [command], command)

    async def apply(self, ctx: StepContext, plan: Plan[str]) -> Outcome:
        return Outcome.from_result(await ctx.run(plan.given()),
                                   success=StepStatus.OK if self.readonly else StepStatus.CHANGED)
