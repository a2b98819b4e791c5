"""Checking a recipe against an inventory and the user's --var values, before anything runs:
every variable known and given, every placeholder resolvable, every selector valid, every
local file there. Problems are ConfigErrors naming the recipe file and line."""

from __future__ import annotations

from dataclasses import dataclass, field

from saf.errors import ConfigError, SelectorError, UsageError
from saf.fleet import Fleet
from saf.format import fmt_bytes
from saf.inventory.model import Inventory, Node
from saf.recipe import substitute
from saf.recipe.model import Recipe, Step
from saf.recipe.values import COMMAND, value_problem
from saf.shell import MAX_COMMAND


@dataclass(frozen=True)
class Prepared:
    """A recipe ready to run: variables resolved and each step's nodes chosen."""

    recipe: Recipe
    inventory: Inventory
    variables: dict[str, str]
    targets: dict[int, list[Node]]
    selector: str | None = None
    # Why a step has no nodes: its own `on` matches none here ("no node matches os:macos").
    empty: dict[int, str] = field(default_factory=dict)

    @property
    def nodes(self) -> list[str]:
        chosen = {n.name for nodes in self.targets.values() for n in nodes}
        return [n.name for n in self.inventory.nodes if n.name in chosen]


def parse_assignments(pairs: list[str] | tuple[str, ...]) -> dict[str, str]:
    """--var key=value pairs as a dict."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--var takes NAME=VALUE, not {pair!r}")
        out[key.strip()] = value
    return out


def _fail(recipe: Recipe, step: Step | None, key: str | None, message: str) -> ConfigError:
    line = None
    if step is not None:
        line = recipe.lines.get(("steps", step.index, key)) if key else None
        line = line or step.line
    elif key:
        line = recipe.lines.get(("vars", key))
    prefix = f"step {step.index + 1} ({step.name}): " if step is not None else ""
    return ConfigError(recipe.path, prefix + message, line=line)


def resolve_vars(recipe: Recipe, overrides: dict[str, str]) -> dict[str, str]:
    for name in overrides:
        if name not in recipe.vars:
            declared = ", ".join(sorted(recipe.vars)) or "none"
            raise UsageError(f"--var {name}: recipe {recipe.name!r} has no variable "
                             f"{name!r} (declared in [vars]: {declared})")
    values: dict[str, str] = {}
    for name, var in recipe.vars.items():
        value = overrides.get(name, var.default)
        if value is None:
            raise _fail(recipe, None, name, f"missing variable {name!r}"
                        + (f" ({var.description})" if var.description else "")
                        + f"; pass --var {name}=VALUE")
        bad = value_problem(var.type or "text", value)
        if bad:
            where = f"--var {name}" if name in overrides else f"the default of {name!r}"
            raise UsageError(f"{where}: the value {bad}"
                             + (f" ({var.description})" if var.description else ""))
        size = len(value.encode())
        if size > MAX_COMMAND:
            raise UsageError(f"variable {name!r} is {fmt_bytes(size)}: a value reaches the node "
                             f"inside a command line, at most {fmt_bytes(MAX_COMMAND, digits=0)}"
                             "; put it in a file and send that with an upload step")
        values[name] = value
    return values


def check_templates(recipe: Recipe, inventory: Inventory | None) -> None:
    for step in recipe.steps:
        for key, template in step.templates():
            for name in substitute.names_in(template):
                problem = substitute.problem(name, recipe.vars, inventory)
                if problem:
                    raise _fail(recipe, step, key, problem)
        for name in substitute.names_in(step.on):
            if "." in name or name not in recipe.vars:
                raise _fail(recipe, step, "on", f"`on` may only use variables, not {{{name}}}")
        unready = step.kind.preflight(recipe.folder)
        if unready:
            raise _fail(recipe, step, *unready)


async def prepare(recipe: Recipe, fleet: Fleet, overrides: dict[str, str] | None = None,
                  selector: str | None = None) -> Prepared:
    variables = resolve_vars(recipe, overrides or {})
    check_templates(recipe, fleet.inventory)
    try:
        limit = {n.name for n in await fleet.select(selector)} if selector else None
    except SelectorError as exc:
        raise UsageError(f"--on: {exc}") from None
    targets: dict[int, list[Node]] = {}
    empty: dict[int, str] = {}
    for step in recipe.steps:
        on = substitute.render(step.on, substitute.Facts(variables, fleet.inventory.nodes[0],
                                                         fleet.inventory), shell=False) \
            if fleet.inventory.nodes else step.on
        try:
            # The recipe's own selector may match nothing on this cluster (os:macos without
            # Macs): the step is skipped with the reason. A misspelt one is still an error.
            nodes = await fleet.select(on, allow_empty=True)
        except SelectorError as exc:
            raise _fail(recipe, step, "on", f"bad selector: {exc}") from None
        if not nodes:
            empty[step.index] = f"no node matches {on}"
        elif limit is not None and not any(n.name in limit for n in nodes):
            empty[step.index] = f"none of its nodes ({on}) is in --on {selector}"
        targets[step.index] = [n for n in nodes if limit is None or n.name in limit]
    prepared = Prepared(recipe, fleet.inventory, variables, targets, selector, empty)
    check_fields(prepared)
    return prepared


def check_fields(prepared: Prepared) -> None:
    """Every field of every step, rendered for every node it runs on, fits its form (a value
    its grammar; saf.recipe.values) and the one size limit of a command line, before anything
    runs. A refusal names the step, the field and, where it differs per node, the node."""
    recipe = prepared.recipe
    for step in recipe.steps:
        for node in prepared.targets.get(step.index, []):
            facts = substitute.Facts(prepared.variables, node, prepared.inventory)
            for key, template in step.templates():
                form = step.form(key)
                value = substitute.render(template, facts, shell=form == COMMAND)
                on = (f" on {node.name}" if any("." in n for n in substitute.names_in(template))
                      else "")
                bad = value_problem(form, value)
                if bad:
                    raise _fail(recipe, step, key, f"{key}{on}: the value {bad}")
                size = len(value.encode())
                if size > MAX_COMMAND:
                    raise _fail(recipe, step, key,
                                f"{key}{on} is {fmt_bytes(size)} once its values are put in; "
                                f"a command line may be at most "
                                f"{fmt_bytes(MAX_COMMAND, digits=0)} (put the data in a file "
                                "and send it with an upload step)")
