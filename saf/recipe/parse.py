"""Reading and validating a recipe file. Every mistake is a ConfigError naming the file, the
line and what is wrong, raised before anything runs.

The file's shape is declared in saf.recipe.schema and decoded by saf.config_model; what is
not about shape (a step's kind, variable names, a default that fits its type, duplicate step
names, keys a kind refuses) is checked here after decoding. A kind's own keys are declared
by the kind (its `Params`) and decoded with the step; its `parse` reads them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from saf.config_model import Source, decode
from saf.recipe.kinds import KINDS
from saf.recipe.model import Recipe, Step, Var
from saf.recipe.schema import RecipeFile, VarTable, own_params, step_model
from saf.recipe.values import GRAMMARS, value_problem
from saf.renamed import OLD_KINDS, renamed
from saf.tomlpos import TomlPositions, load_toml

Where = tuple[Any, ...]


def _scalar(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    return None


def _table_name(data: Any) -> Any:
    def name(where: Where) -> str:
        if not where:
            return "the recipe"
        if len(where) == 2 and where[0] == "vars":
            return f"variable {where[1]!r}"
        if len(where) == 2 and where[0] == "steps" and isinstance(where[1], int):
            steps = data.get("steps") if isinstance(data, dict) else None
            raw = steps[where[1]] if isinstance(steps, list) and where[1] < len(steps) else None
            kind = raw.get("kind", "shell") if isinstance(raw, dict) else None
            if not isinstance(kind, str):
                return f"step {where[1] + 1}"
            return f"step {where[1] + 1}, {'an' if kind[:1] in 'aeiou' else 'a'} {kind} step"
        return "[" + ".".join(map(str, where)) + "]"
    return name


def _key_name(where: Where) -> str:
    if where and where[0] == "steps" and len(where) >= 2 and isinstance(where[1], int):
        rest = where[2:]
        return f"step {where[1] + 1}" + (f": {'.'.join(map(repr, rest))}" if rest else "")
    if len(where) >= 2 and where[0] == "vars":
        return f"variable {where[1]!r}" + (f": {'.'.join(map(repr, where[2:]))}"
                                          if len(where) > 2 else "")
    return ".".join(map(str, where)) or "the recipe"


def _parse_vars(raw: dict[str, Any], source: Source) -> dict[str, Var]:
    out: dict[str, Var] = {}
    for name, value in raw.items():
        if "." in name or not name.replace("_", "a").replace("-", "a").isalnum():
            raise source.fail(("vars", name),
                              f"bad variable name {name!r} (letters, digits, _ and -)")
        if isinstance(value, VarTable):
            if value.type is not None and value.type not in GRAMMARS:
                raise source.fail(("vars", name, "type"), f"unknown type {value.type!r} of "
                                  f"variable {name!r} (types: {', '.join(sorted(GRAMMARS))})")
            text = _scalar(value.default) if value.default is not None else None
            problem = value_problem(value.type, text) if value.type and text is not None \
                else None
            if problem:
                raise source.fail(("vars", name, "default"), f"default of {name!r} {problem}")
            out[name] = Var(name, text, value.description, value.type)
        else:
            out[name] = Var(name, _scalar(value))
    return out


def _parse_step(index: int, raw: dict[str, Any], source: Source) -> Step:
    where = ("steps", index)
    kind_name = raw.get("kind", "shell" if "run" in raw else "recipe" if "recipe" in raw
                        else None)
    if isinstance(kind_name, str) and kind_name in OLD_KINDS and kind_name not in KINDS:
        kind_name = renamed("kind", kind_name, OLD_KINDS[kind_name], source.path,
                            source.line(where + ("kind",)))
    if kind_name is None:
        raise source.fail(where, "a step needs `run = \"command\"` or `kind = \"...\"` ("
                          f"kinds: {', '.join(sorted(KINDS))})")
    if not isinstance(kind_name, str) or kind_name not in KINDS:
        raise source.fail(where + ("kind",), f"unknown kind {kind_name!r} (kinds: "
                          f"{', '.join(sorted(KINDS))})")
    kind_cls = KINDS[kind_name]
    table = decode(raw, step_model(kind_name, kind_cls.Params), source.within(where))
    if "run" in raw and kind_name != "shell":
        raise source.fail(where + ("run",), f"`run` belongs to shell steps, not kind "
                          f"{kind_name!r}")
    fail = lambda key, msg: source.fail(where + (key,), f"step {index + 1}: {msg}")  # noqa: E731
    kind = kind_cls.parse(own_params(table, kind_cls.Params), fail)
    name = table.name or kind.describe()[:60] or f"step {index + 1}"
    if table.become and not kind_cls.supports_become:
        raise source.fail(where + ("become",), f"kind {kind_name!r} does not support become")
    if kind_name == "recipe":
        for key in ("check", "creates", "retries", "delay", "serial", "timeout", "on_failure"):
            if key in raw:
                raise source.fail(where + (key,), f"step {index + 1}: a recipe step runs the "
                                  f"other recipe's steps; {key!r} belongs on those")
    if kind_cls.collective:
        for key in ("check", "creates", "retries", "serial"):
            if key in raw:
                raise source.fail(where + (key,), f"a {kind_name} step acts on its nodes "
                                  f"together; {key!r} would leave some of them out")
    return Step(index=index, name=str(name), kind=kind, on=table.on, check=table.check,
                creates=table.creates, become=table.become, timeout=table.timeout,
                retries=table.retries, delay=table.delay, on_failure=table.on_failure,
                serial=table.serial, description=table.description or "",
                line=source.line(where))


def parse_recipe(data: dict[str, Any], pos: TomlPositions, path: Path | None) -> Recipe:
    source = Source.of_positions(path, pos, table=_table_name(data), key=_key_name)
    file = decode(data, RecipeFile, source)
    if not file.steps:
        raise source.fail((), "a recipe needs at least one [[steps]] table")
    steps = tuple(_parse_step(i, raw, source) for i, raw in enumerate(file.steps))
    seen: dict[str, int] = {}
    for step in steps:
        if step.name in seen:
            raise source.fail(("steps", step.index, "name"), f"two steps are named "
                              f"{step.name!r} (steps {seen[step.name] + 1} and "
                              f"{step.index + 1})")
        seen[step.name] = step.index
    name = file.name or (path.stem if path else "recipe")
    return Recipe(name=name, description=file.description,
                  vars=_parse_vars(file.vars, source), steps=steps, path=path,
                  folder=path.parent if path else None, lines=dict(pos.lines))


def load_recipe(path: Path) -> Recipe:
    data, pos = load_toml(path)
    return parse_recipe(data, pos, path)
