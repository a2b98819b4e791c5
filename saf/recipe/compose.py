"""Recipes that run recipes: each step of kind `recipe` (saf.recipe.kinds.include) is replaced,
before anything runs, by the other recipe's steps, so the runner, --check, resume, statuses
and logs see ordinary steps.

An included step keeps what makes it itself (its kind, keys, file and line, its folder for
`upload`) and gets:
- a name `INCLUDE › its name` (the recipe step's name, by default the recipe's);
- its own variables: the included recipe's defaults, with the recipe step's `vars` over them
  (which may name the including recipe's `{variables}`);
- the recipe step's `on` as a limit: it runs on the nodes both its own `on` and every
  enclosing recipe step's `on` name.

A recipe that includes itself, directly or through others, is refused with the ring
(`a -> b -> a`) and the file and line of the step that closes it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from saf.errors import ConfigError, SafError
from saf.inventory.model import Inventory
from saf.recipe import substitute
from saf.recipe.kinds.include import Include
from saf.recipe.model import Recipe, Step
from saf.recipe.values import value_problem

ARROW = " › "
# A ring is refused long before this; the limit only bounds a legal but absurd nesting.
MAX_DEPTH = 16

Load = Callable[[str, Path | None], Recipe]
"""load(name or path, the including recipe's folder) -> the recipe (saf.recipe.library)."""


def has_includes(recipe: Recipe) -> bool:
    return any(isinstance(step.kind, Include) for step in recipe.steps)


def _identity(recipe: Recipe) -> str:
    return str(recipe.path.resolve()) if recipe.path else recipe.name


def _fail(step: Step, message: str) -> ConfigError:
    where = step.origin or None
    path = where.path if where else None
    return ConfigError(path, f"step {(step.origin_index or step.index) + 1} ({step.name}): "
                       f"{message}", line=step.line)


def _values(step: Step, include: Include, child: Recipe, variables: dict[str, str],
            inventory: Inventory) -> dict[str, str]:
    """The included recipe's variables: its defaults, the recipe step's `vars` over them."""
    parent = step.origin
    declared = parent.vars if parent else {}
    out: dict[str, str] = {}
    for name, template in include.values.items():
        if name not in child.vars:
            known = ", ".join(sorted(child.vars)) or "none"
            raise _fail(step, f"recipe {child.name!r} has no variable {name!r} (its [vars]: "
                        f"{known})")
        for used in substitute.names_in(template):
            if "." in used or used not in declared:
                raise _fail(step, f"vars.{name} may only use this recipe's variables, not "
                            f"{{{used}}}")
        node = inventory.nodes[0] if inventory.nodes else None
        out[name] = substitute.render(template, substitute.Facts(variables, node, inventory),
                                      shell=False) if node is not None else template
    for name, var in child.vars.items():
        value = out.get(name, var.default)
        if value is None:
            raise _fail(step, f"recipe {child.name!r} needs variable {name!r}"
                        + (f" ({var.description})" if var.description else "")
                        + f": give it in vars = {{ {name} = \"...\" }}")
        bad = value_problem(var.type or "text", value)
        if bad:
            raise _fail(step, f"vars.{name}: the value {bad}")
        out[name] = value
    return out


def _expand(recipe: Recipe, variables: dict[str, str], inventory: Inventory, load: Load,
            chain: tuple[Recipe, ...], scope: tuple[str, ...], within: tuple[str, ...],
            out: list[Step]) -> None:
    for step in recipe.steps:
        here = dataclasses.replace(step, origin=recipe, origin_index=step.index,
                                   scope=scope, variables=variables, within=within,
                                   name=ARROW.join((*scope, step.name)))
        if not isinstance(step.kind, Include):
            out.append(dataclasses.replace(here, index=len(out)))
            continue
        try:
            child = load(step.kind.recipe, recipe.folder)
        except ConfigError:
            raise
        except SafError as exc:
            raise _fail(here, str(exc)) from None
        names = [r.name for r in chain]
        seen = [_identity(r) for r in chain]
        if _identity(child) in seen:
            ring = names[seen.index(_identity(child)):] + [child.name]
            raise _fail(here, f"a recipe that runs itself: {' -> '.join(ring)}")
        if len(chain) >= MAX_DEPTH:
            raise _fail(here, f"recipes nested more than {MAX_DEPTH} deep: "
                        f"{' -> '.join(names + [child.name])}")
        values = _values(here, step.kind, child, variables, inventory)
        on = substitute.render(step.on, substitute.Facts(variables, inventory.nodes[0],
                                                         inventory), shell=False) \
            if inventory.nodes else step.on
        _expand(child, values, inventory, load, chain + (child,), (*scope, step.name),
                within + ((on,) if on != "all" else ()), out)


def expand(recipe: Recipe, variables: dict[str, str], inventory: Inventory,
           load: Load) -> Recipe:
    """`recipe` with every `recipe` step replaced by the other recipe's steps (module
    docstring); every step, included or not, knows its origin and variables. A ConfigError
    for a ring, an unknown recipe or a variable the other recipe does not take."""
    steps: list[Step] = []
    _expand(recipe, variables, inventory, load, (recipe,), (), (), steps)
    return dataclasses.replace(recipe, steps=tuple(steps))
