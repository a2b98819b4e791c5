"""Reading and validating a recipe file. Every mistake is a ConfigError naming the file, the
line and what is wrong, raised before anything runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from saf.errors import ConfigError
from saf.recipe.kinds import KINDS
from saf.recipe.model import ON_FAILURE, Recipe, Step, Var
from saf.tomlpos import TomlPositions, load_toml
from saf.numbers import number_problem
from saf.recipe.values import GRAMMARS, value_problem

TOP_KEYS = {"name": "the recipe's name", "description": "what it does",
            "vars": "variables with defaults", "steps": "the ordered [[steps]]"}
STEP_KEYS = {"name": "what the step does, in a few words",
             "description": "more words", "run": "a shell command (kind shell)",
             "kind": "a built-in kind: " + ", ".join(sorted(KINDS)),
             "on": "node selector (default all)",
             "check": "a command that exits 0 when nothing needs doing",
             "creates": "a path on the node; the step is skipped when it exists",
             "become": "run as root (sudo)", "timeout": "seconds per attempt",
             "retries": "extra attempts after a failure", "delay": "seconds between attempts",
             "on_failure": "stop | continue", "serial": "one node at a time"}
VAR_KEYS = {"default", "description", "type"}


class _Checker:
    def __init__(self, pos: TomlPositions, path: Path | None) -> None:
        self.pos = pos
        self.path = path

    def fail(self, message: str, *where: Any) -> ConfigError:
        return ConfigError(self.path, message, line=self.pos.line(*where))


def _scalar(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    return None


def _parse_vars(raw: Any, c: _Checker) -> dict[str, Var]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise c.fail("[vars] must be a table of name = default", "vars")
    out: dict[str, Var] = {}
    for name, value in raw.items():
        if "." in name or not name.replace("_", "a").replace("-", "a").isalnum():
            raise c.fail(f"bad variable name {name!r} (letters, digits, _ and -)", "vars", name)
        if isinstance(value, dict):
            for key in value:
                if key not in VAR_KEYS:
                    raise c.fail(f"unknown key {key!r} in variable {name!r} (known keys: "
                                 f"{', '.join(sorted(VAR_KEYS))})", "vars", name, key)
            default = value.get("default")
            if default is not None and _scalar(default) is None:
                raise c.fail(f"default of {name!r} must be a string, number or boolean",
                             "vars", name)
            kind = value.get("type")
            if kind is not None and kind not in GRAMMARS:
                raise c.fail(f"unknown type {kind!r} of variable {name!r} (types: "
                             f"{', '.join(sorted(GRAMMARS))})", "vars", name, "type")
            text = _scalar(default) if default is not None else None
            problem = value_problem(kind, text) if kind and text is not None else None
            if problem:
                raise c.fail(f"default of {name!r} {problem}", "vars", name, "default")
            out[name] = Var(name, text, str(value.get("description", "")), kind)
        else:
            if _scalar(value) is None:
                raise c.fail(f"variable {name!r} must be a string, number, boolean, or a "
                             "table with default and description", "vars", name)
            out[name] = Var(name, _scalar(value))
    return out


# The most a step may ask for: a week per attempt, a thousand retries, a day between tries.
STEP_LIMITS = {"timeout": 7 * 86400.0, "retries": 1000, "delay": 86400.0}


def _number(step: dict[str, Any], key: str, c: _Checker, where: tuple[Any, ...],
            default: float | None, integer: bool = False) -> Any:
    value = step.get(key, default)
    if value is None:
        return None
    problem = number_problem(value, low=0, high=STEP_LIMITS[key], integer=integer)
    if problem:
        raise c.fail(f"{key!r} {problem}", *where, key)
    return value


def _parse_step(index: int, raw: Any, c: _Checker) -> Step:
    where = ("steps", index)
    if not isinstance(raw, dict):
        raise c.fail("each step must be a [[steps]] table", *where)
    kind_name = raw.get("kind", "shell" if "run" in raw else None)
    if kind_name is None:
        raise c.fail("a step needs `run = \"command\"` or `kind = \"...\"` ("
                     f"kinds: {', '.join(sorted(KINDS))})", *where)
    if not isinstance(kind_name, str) or kind_name not in KINDS:
        raise c.fail(f"unknown kind {kind_name!r} (kinds: {', '.join(sorted(KINDS))})",
                     *where, "kind")
    kind_cls = KINDS[kind_name]
    allowed = set(STEP_KEYS) | set(kind_cls.keys)
    for key in raw:
        if key not in allowed:
            raise c.fail(f"unknown key {key!r} in step {index + 1} (a {kind_name} step knows: "
                         f"{', '.join(sorted(allowed))})", *where, key)
    if "run" in raw and kind_name != "shell":
        raise c.fail(f"`run` belongs to shell steps, not kind {kind_name!r}", *where, "run")
    params = {k: v for k, v in raw.items() if k in kind_cls.keys}
    kind = kind_cls.parse(params, lambda key, msg: c.fail(msg, *where, key))
    name = raw.get("name") or kind.describe()[:60] or f"step {index + 1}"
    for key in ("name", "description", "on", "check", "creates"):
        if key in raw and (not isinstance(raw[key], str) or not raw[key].strip()):
            raise c.fail(f"{key!r} must be a non-empty string", *where, key)
    for key in ("become", "serial"):
        if key in raw and not isinstance(raw[key], bool):
            raise c.fail(f"{key!r} must be true or false", *where, key)
    on_failure = raw.get("on_failure", "stop")
    if on_failure not in ON_FAILURE:
        raise c.fail(f"on_failure must be one of {', '.join(ON_FAILURE)}, not {on_failure!r}",
                     *where, "on_failure")
    become = raw.get("become", False)
    if become and not kind_cls.supports_become:
        raise c.fail(f"kind {kind_name!r} does not support become", *where, "become")
    if kind_cls.collective:
        for key in ("check", "creates", "retries", "serial"):
            if key in raw:
                raise c.fail(f"a {kind_name} step acts on its nodes together; {key!r} would "
                             "leave some of them out", *where, key)
    return Step(index=index, name=str(name), kind=kind, on=raw.get("on", "all"),
                check=raw.get("check"), creates=raw.get("creates"), become=become,
                timeout=_number(raw, "timeout", c, where, None),
                retries=_number(raw, "retries", c, where, 0, integer=True),
                delay=_number(raw, "delay", c, where, 1.0), on_failure=on_failure,
                serial=raw.get("serial", False), description=raw.get("description", ""),
                line=c.pos.line(*where))


def parse_recipe(data: dict[str, Any], pos: TomlPositions, path: Path | None) -> Recipe:
    c = _Checker(pos, path)
    for key in data:
        if key not in TOP_KEYS:
            raise c.fail(f"unknown key {key!r} (known keys: {', '.join(sorted(TOP_KEYS))})",
                         key)
    for key in ("name", "description"):
        if key in data and not isinstance(data[key], str):
            raise c.fail(f"{key!r} must be a string", key)
    steps_raw = data.get("steps")
    if not steps_raw:
        raise c.fail("a recipe needs at least one [[steps]] table")
    if not isinstance(steps_raw, list):
        raise c.fail("steps must be an array of [[steps]] tables", "steps")
    steps = tuple(_parse_step(i, raw, c) for i, raw in enumerate(steps_raw))
    seen: dict[str, int] = {}
    for step in steps:
        if step.name in seen:
            raise c.fail(f"two steps are named {step.name!r} (steps {seen[step.name] + 1} "
                         f"and {step.index + 1})", "steps", step.index, "name")
        seen[step.name] = step.index
    name = data.get("name") or (path.stem if path else "recipe")
    return Recipe(name=name, description=data.get("description", ""),
                  vars=_parse_vars(data.get("vars"), c), steps=steps, path=path,
                  folder=path.parent if path else None, lines=dict(pos.lines))


def load_recipe(path: Path) -> Recipe:
    data, pos = load_toml(path)
    return parse_recipe(data, pos, path)
