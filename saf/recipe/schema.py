"""The shape of a recipe file as a person writes it, declared once (decoded by
saf.config_model): the top level, its variables, and the keys every step has. A step's own
keys are its kind's (saf.recipe.kinds); `step_model` adds them to StepTable, so an unknown
key is refused with the keys that step knows."""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any, Literal, cast

import msgspec
from msgspec import Meta, Struct

Text = Annotated[str, Meta(min_length=1, pattern=r"\S")]
Scalar = str | bool | int | float
# The most a step may ask for: a week per attempt, a thousand retries, a day between tries.
# A number is kept as written (int or float) for what shows it.
Seconds = Annotated[int, Meta(ge=0, le=7 * 86400)] | Annotated[float, Meta(ge=0, le=7 * 86400)]
Delay = Annotated[int, Meta(ge=0, le=86400)] | Annotated[float, Meta(ge=0, le=86400)]


class VarTable(Struct, forbid_unknown_fields=True, frozen=True):
    default: Annotated[Scalar, Meta(description="a string, number or boolean")] | None = None
    description: str = ""
    type: str | None = None  # the grammar its value must fit: one of saf.recipe.values.GRAMMARS


Variable = Annotated[Scalar | VarTable, Meta(
    description="a string, number, boolean, or a table with default and description")]


class RecipeFile(Struct, forbid_unknown_fields=True, frozen=True):
    name: str | None = None  # the recipe's name (default: the file's stem)
    description: str = ""  # what it does
    vars: Annotated[dict[str, Variable], Meta(description="a table of name = default")] = {}
    # The ordered [[steps]]; each is decoded on its own once its kind is known.
    steps: Annotated[list[dict[str, Any]], Meta(description="an array of [[steps]] tables")
                     ] = []


class StepTable(Struct, forbid_unknown_fields=True, frozen=True):
    name: Text | None = None  # what the step does, in a few words
    description: Text | None = None
    kind: str | None = None  # a built-in kind (saf.recipe.kinds.KINDS)
    run: Any = None  # a shell command: kind shell's own key, refused on other kinds
    on: Text = "all"  # node selector
    check: Text | None = None  # a command that exits 0 when nothing needs doing
    creates: Text | None = None  # a path on the node; the step is skipped when it exists
    become: bool = False  # run as root (sudo)
    timeout: Seconds | None = None  # seconds per attempt
    retries: Annotated[int, Meta(ge=0, le=1000)] = 0  # extra attempts after a failure
    delay: Delay = 1.0  # seconds between attempts
    on_failure: Literal["stop", "continue"] = "stop"
    serial: bool = False  # one node at a time


@cache
def step_model(kind: str, keys: tuple[str, ...]) -> type[StepTable]:
    """StepTable with a kind's own keys (their values are the kind's to check: `parse`)."""
    own = [(key, Any, None) for key in keys if key not in StepTable.__struct_fields__]
    model = msgspec.defstruct(f"{kind.title().replace('_', '')}Step", own, bases=(StepTable,),
                              forbid_unknown_fields=True, frozen=True)
    return cast(type[StepTable], model)
