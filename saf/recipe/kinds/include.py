"""kind = "recipe": run another recipe's steps here, with its variables and on the nodes both
this step's `on` and each of its steps' own name (docs/recipes.md, "Recipes that run
recipes"). `recipe = "python-match"` alone makes a step of this kind.

The step never runs as itself: saf.recipe.compose puts the other recipe's steps in its place
before anything runs, each shown as `NAME › its step`, so --check, resume, statuses and logs
are those of ordinary steps."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from saf.recipe.events import StepStatus
from saf.recipe.kinds.base import Fail, Kind, KindParams, Outcome, Plan, StepContext, Value, written
from saf.recipe.schema import Text


class IncludeParams(KindParams):
    recipe: Text  # a recipe's name, or a file (relative to this recipe's folder)
    # The other recipe's variables: a value, or text with this recipe's {variables}.
    vars: Annotated[dict[str, Value], Meta(description="a table of name = value")] = {}


class Include(Kind[None]):
    name = "recipe"
    Params = IncludeParams
    supports_become = False  # each included step says whether it needs root

    def __init__(self, recipe: str, values: dict[str, str]) -> None:
        self.recipe = recipe
        self.values = values

    @classmethod
    def parse(cls, params: IncludeParams, fail: Fail) -> Include:
        return cls(params.recipe, {k: written(v) for k, v in params.vars.items()})

    def describe(self) -> str:
        return self.recipe.rsplit("/", 1)[-1].removesuffix(".toml")

    async def plan(self, ctx: StepContext) -> Plan[None]:
        # compose replaced every step of this kind before the run; one left is saf's bug.
        return Plan(False, refusal="a recipe step ran without its recipe's steps put in "
                    "its place (saf.recipe.compose)")

    async def apply(self, ctx: StepContext, plan: Plan[None]) -> Outcome:
        return Outcome(StepStatus.FAILED, plan.refusal or "")
