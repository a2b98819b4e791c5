"""Checking a recipe against an inventory and the user's --var values, before anything runs:
every variable known and given, every placeholder resolvable, every selector valid, every
local file there. Problems are ConfigErrors naming the recipe file and line."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from saf.errors import ConfigError, SelectorError, UsageError
from saf.fleet import Fleet
from saf.format import fmt_bytes
from saf.inventory.model import Inventory, Node
from saf.recipe import compose, library, substitute
from saf.recipe.model import Recipe, Step
from saf.recipe.parse import load_recipe
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

    def variables_for(self, step: Step) -> dict[str, str]:
        """The variables `step` sees: its own when another recipe's step put it here
        (saf.recipe.compose), else the run's."""
        return step.variables if step.variables is not None else self.variables

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
    """An error at `key` of `step` (or of [vars]), in the file the step is written in."""
    line = None
    index = None
    if step is not None:
        recipe = step.origin or recipe
        index = step.origin_index if step.origin_index is not None else step.index
        line = recipe.lines.get(("steps", index, key)) if key else None
        line = line or step.line
    elif key:
        line = recipe.lines.get(("vars", key))
    prefix = f"step {index + 1} ({step.name}): " if step is not None and index is not None \
        else ""
    return ConfigError(recipe.path, prefix + message, line=line)


def load_included(name: str, folder: Path | None) -> Recipe:
    """The recipe a `recipe` step names: a file (a name ending .toml or holding a /),
    relative to the including recipe's folder, or a recipe's name (saf.recipe.library)."""
    if not (name.endswith(".toml") or "/" in name):
        return library.load(name)
    path = Path(name).expanduser()
    if folder is not None and not path.is_absolute():
        path = folder / path
    if not path.is_file():
        raise ConfigError(path, "no such recipe file")
    return load_recipe(path)


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
        own = step.origin or recipe  # the file it is written in, with its [vars]
        for key, template in step.templates():
            for name in substitute.names_in(template):
                problem = substitute.problem(name, own.vars, inventory)
                if problem:
                    raise _fail(recipe, step, key, problem)
        for name in substitute.names_in(step.on):
            if "." in name or name not in own.vars:
                raise _fail(recipe, step, "on", f"`on` may only use variables, not {{{name}}}")
        unready = step.kind.preflight(own.folder)
        if unready:
            raise _fail(recipe, step, *unready)


async def prepare(recipe: Recipe, fleet: Fleet, overrides: dict[str, str] | None = None,
                  selector: str | None = None) -> Prepared:
    variables = resolve_vars(recipe, overrides or {})
    # Every `recipe` step becomes the other recipe's steps (a ring is refused here).
    recipe = compose.expand(recipe, variables, fleet.inventory, load_included)
    check_templates(recipe, fleet.inventory)
    try:
        limit = {n.name for n in await fleet.select(selector)} if selector else None
    except SelectorError as exc:
        raise UsageError(f"--on: {exc}") from None
    targets: dict[int, list[Node]] = {}
    empty: dict[int, str] = {}
    for step in recipe.steps:
        own = step.variables if step.variables is not None else variables
        on = substitute.render(step.on, substitute.Facts(own, fleet.inventory.nodes[0],
                                                         fleet.inventory), shell=False) \
            if fleet.inventory.nodes else step.on
        try:
            # The recipe's own selector may match nothing on this cluster (os:macos without
            # Macs): the step is skipped with the reason. A misspelt one is still an error.
            nodes = await fleet.select(on, allow_empty=True)
            # A step another recipe's step put here runs only where that step's `on` says.
            for limit_on in step.within:
                allowed = {n.name for n in await fleet.select(limit_on, allow_empty=True)}
                nodes = [n for n in nodes if n.name in allowed]
                on = f"{on} within {limit_on}" if on != "all" else limit_on
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
            facts = substitute.Facts(prepared.variables_for(step), node, prepared.inventory)
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
