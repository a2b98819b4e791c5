"""The shape of a recipe file as a person writes it, declared once (decoded by
saf.config_model): the top level, its variables, and the keys every step has. A step's own
keys are its kind's `Params` (saf.recipe.kinds); `step_model` adds them to StepTable, so one
decode checks a step whole and an unknown key is refused with the keys that step knows."""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any, Literal, TypeVar, cast

import msgspec
from msgspec import Meta, Struct

P = TypeVar("P", bound=Struct)

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
def step_model(kind: str, params: type[Struct]) -> type[StepTable]:
    """StepTable with a kind's own keys, its `params` Struct's fields (each with its type,
    range and default; one of the same name, shell's `run`, replaces StepTable's). kw_only:
    a kind's required key may follow the step's optional ones."""
    own: list[tuple[str, Any, Any]] = []
    for f in msgspec.structs.fields(params):
        default = f.default if f.default_factory is msgspec.NODEFAULT \
            else msgspec.field(default_factory=f.default_factory)
        # defstruct takes (name, type) or (name, type, default): the list holds both shapes.
        own.append((f.name, f.type, default) if default is not msgspec.NODEFAULT
                   else (f.name, f.type))  # type: ignore[arg-type]
    model = msgspec.defstruct(f"{kind.title().replace('_', '')}Step", own, bases=(StepTable,),
                              forbid_unknown_fields=True, frozen=True, kw_only=True)
    return cast(type[StepTable], model)


def own_params(table: StepTable, params: type[P]) -> P:
    """A kind's own keys out of its decoded step (step_model's), as its `params` Struct."""
    return params(**{name: getattr(table, name) for name in params.__struct_fields__})
