"""The recipe model: what a parsed, validated recipe is. Values here are already checked."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from saf.recipe.kinds.base import Kind

ON_FAILURE = ("stop", "continue")
STEP_FORMS = {"check": "command", "creates": "path"}  # the fields every step has


@dataclass(frozen=True)
class Var:
    """A recipe variable: a default (None means the user must give it) and what it is for."""

    name: str
    default: str | None = None
    description: str = ""
    # The grammar its value must fit (saf.recipe.values.GRAMMARS), checked before anything
    # runs; None: any text.
    type: str | None = None

    @property
    def required(self) -> bool:
        return self.default is None


@dataclass(frozen=True)
class Step:
    index: int
    name: str
    kind: Kind[Any]  # any kind: each has its own Plan data
    on: str = "all"
    check: str | None = None
    creates: str | None = None
    become: bool = False
    timeout: float | None = None
    retries: int = 0
    delay: float = 1.0
    on_failure: str = "stop"
    serial: bool = False
    description: str = ""
    line: int | None = None
    # Where a step put in by a `recipe` step came from (saf.recipe.compose): the recipe file
    # it is written in and its index there (for file:line and `upload` sources), the names
    # of the recipe steps it is inside (`("python-match",)`; nothing when it is the run's own
    # step), its own variables, and the `on` of each recipe step around it (its nodes are
    # those every one of them names too).
    origin: Recipe | None = field(default=None, compare=False, repr=False)
    origin_index: int | None = None
    scope: tuple[str, ...] = ()
    variables: dict[str, str] | None = field(default=None, compare=False, repr=False)
    within: tuple[str, ...] = ()

    def templates(self) -> list[tuple[str, str]]:
        """(key, template) of every text of this step that is substituted per node."""
        out = [(k, v) for k, v in (("check", self.check), ("creates", self.creates)) if v]
        return out + self.kind.templates()

    def form(self, key: str) -> str:
        """The form of field `key` (saf.recipe.values): "command" or the grammar of its
        value. One rule for every field of every kind."""
        return STEP_FORMS.get(key) or self.kind.forms[key]


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    vars: dict[str, Var]
    steps: tuple[Step, ...]
    path: Path | None = None
    # Where `upload` sources are looked up first (then the working directory).
    folder: Path | None = None
    lines: dict[tuple[Any, ...], int] = field(default_factory=dict, compare=False, repr=False)

    def step(self, name_or_index: str | int) -> Step:
        for step in self.steps:
            if step.name == name_or_index or step.index == name_or_index:
                return step
        raise KeyError(name_or_index)
