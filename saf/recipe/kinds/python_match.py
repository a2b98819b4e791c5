"""kind = "python_match": make every node of the step run the same Python X.Y.Z and Ray as the
head (or as `python` / `ray` say), as Ray requires; with `verify = true`, only check that
they do, and fail the odd ones out.

The step's first node gathers every node's facts at once and prints the matrix (node, Python
now, Ray now, OS/arch, pyenv/uv, what changes; odd ones marked `!`); each node then plans
its own commands from its facts (saf.ray.python_match), so `--check` shows them exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from saf.errors import ConnectError, InventoryError, RayError
from saf.fleet import Fleet
from saf.inventory import edit as inventory_edit
from saf.inventory.model import Node
from saf.ray import python_match as pm
from saf.ray.facts import NodeFacts
from saf.ray.node_call import node_facts
from saf.ray.session import connector_run
from saf.recipe.events import StepStatus
from saf.recipe.kinds.base import Fail, Kind, KindParams, Outcome, Plan, StepContext

FALLBACK = "python3"


async def _gather(fleet: Fleet, nodes: list[Node]) -> dict[str, NodeFacts | str]:
    async def one(conn: Any) -> NodeFacts:
        node = conn.node
        return await node_facts(connector_run(conn), node.name, node.python,
                                temp_dir="/tmp/ray", ports=[], tools=True, fallback=FALLBACK,
                                parts=True)
    found = await fleet.each(nodes, one)
    out: dict[str, NodeFacts | str] = {}
    for node in nodes:
        value = found[node.name]
        if isinstance(value, NodeFacts):
            out[node.name] = value
        elif isinstance(value, (RayError, ConnectError)):
            out[node.name] = str(value)
        else:
            out[node.name] = f"did not answer ({type(value).__name__}: {value})"
    return out


class PythonMatchParams(KindParams):
    # Each "" means the default, found on the nodes; each may hold {placeholders}.
    python: str = ""  # the Python every node must run, X.Y.Z (default: the head's)
    ray: str = ""  # the Ray version (default: the head's)
    tool: str = ""  # pyenv or uv to get the Python (default: pyenv where the node has it)
    venv: str = ""  # where a node's venv goes when its inventory python is not one
    packages: str = ""  # more packages to pip install beside ray[default]
    verify: bool = False  # true: only check that every node matches
    # true: write the venv's `python = "..."` into the node's [[nodes]] entry of the inventory
    write_inventory: str = "false"


class PythonMatch(Kind[tuple[list[str], str]]):
    name = "python_match"
    forms = {"python": "word", "ray": "word", "tool": "word", "venv": "path", "packages": "pip",
             "write_inventory": "bool"}
    Params = PythonMatchParams
    supports_become = False

    def __init__(self, params: dict[str, str], verify: bool) -> None:
        self.params = params
        self.verify = verify

    @classmethod
    def parse(cls, params: PythonMatchParams, fail: Fail) -> PythonMatch:
        out = {key: getattr(params, key) for key in ("python", "ray", "tool", "venv",
                                                     "packages", "write_inventory")}
        flag = out["write_inventory"].strip().lower()
        if "{" not in flag and flag not in ("true", "false"):
            raise fail("write_inventory", f"{flag!r} is not true or false")
        return cls(out, params.verify)

    def templates(self) -> list[tuple[str, str]]:
        return [(k, v) for k, v in self.params.items() if v]

    def read_only(self) -> bool:
        return self.verify

    def describe(self) -> str:
        return ("check that every node runs the same Python and Ray" if self.verify else
                "give every node the head's exact Python and Ray, in a venv")

    def _value(self, ctx: StepContext, key: str) -> str:
        value = self.params.get(key, "")
        return ctx.render(value, shell=False).strip() if value else ""

    async def plan(self, ctx: StepContext) -> Plan[tuple[list[str], str]]:
        def work(fleet: Fleet, nodes: list[Node], say: Callable[[str], None]
                 ) -> Any:
            return self._survey(ctx, fleet, nodes, say)
        survey = await ctx.together(work)
        facts, target, problem = survey
        mine = facts.get(ctx.node.name)
        if problem or target is None:
            return Plan(True, refusal=problem or "no target version")
        if isinstance(mine, str) or mine is None:
            return Plan(True, refusal=str(mine))
        tools = ",".join(t for t, v in (("pyenv", mine.pyenv_bin), ("uv", mine.uv_bin)) if v)
        where = f" ({mine.os_arch}{', ' + tools if tools else ''})"
        if pm.matches(mine, target):
            return Plan(False, f"Python {mine.python}, Ray {mine.ray}{where}: as "
                               f"{target.source}",
                        done_status=StepStatus.OK if self.verify else StepStatus.SKIPPED)
        fresh = f" in python3, {ctx.node.python} not made yet" if mine.fallback else ""
        now = (f"Python {mine.python}, Ray {mine.ray or 'none'}{fresh}" + where
               + (f"; {mine.ray_missing_text}" if mine.ray_missing else ""))
        if self.verify and ctx.check_mode:
            return Plan(True, f"{now}: checked again after the fix")
        if self.verify:
            return Plan(True, refusal=f"{now}, not Python {target.python}, "
                                      f"ray[default] {target.ray} "
                                      "(the odd one out; -v shows every node's)")
        tool = self._value(ctx, "tool")
        if tool not in ("", "pyenv", "uv"):
            return Plan(True, refusal=f"tool must be pyenv or uv, not {tool!r}")
        commands, python = pm.fix_commands(
            ctx.node, mine, target, tool=tool,
            venv_default=self._value(ctx, "venv") or pm.DEFAULT_VENV,
            packages=self._value(ctx, "packages"))
        reason = (f"odd one out: {now} -> Python {target.python}, Ray {target.ray} "
                  f"({target.source}'s) in {python}")
        if self._value(ctx, "write_inventory").lower() not in ("", "true", "false"):
            return Plan(True, refusal="write_inventory must be true or false, not "
                                      f"{self._value(ctx, 'write_inventory')!r}")
        if python != ctx.node.python and ctx.check_mode:
            try:
                reason += "; " + self._inventory_note(ctx, python, done=False)
            except InventoryError as exc:
                return Plan(True, refusal=str(exc))
        return Plan(True, reason, commands, (commands, python))

    def _writes(self, ctx: StepContext) -> bool:
        return self._value(ctx, "write_inventory").lower() == "true"

    def _inventory_note(self, ctx: StepContext, python: str, *, done: bool) -> str:
        """What happens to the node's `python =` in the inventory: the edit shown (--check),
        made (write_inventory=true), or asked for."""
        node = ctx.node.name
        path = ctx.inventory.path
        asked = f"set python = \"{python}\" for {node} in the inventory"
        if path is None:
            return asked
        if not self._writes(ctx):
            return f"{asked} (--var write_inventory=true writes it)"
        if done:
            edit = inventory_edit.set_python(path, node, python)
            return f"wrote {edit.describe()}" if edit else f"{path} names it already"
        edit = inventory_edit.python_edit(path, node, python)
        return f"would write {edit.describe()}" if edit else f"{path} names it already"

    async def _survey(self, ctx: StepContext, fleet: Fleet, nodes: list[Node],
                      say: Callable[[str], None]) -> tuple[dict[str, NodeFacts | str],
                                                           pm.Target | None, str | None]:
        facts = await _gather(fleet, nodes)
        head = ctx.inventory.head
        if head is None:
            return facts, None, "no node has role head in the inventory"
        head_facts = facts.get(head.name)
        if head_facts is None:
            head_facts = (await _gather(fleet, [head]))[head.name]
        target, problem = pm.target_of(
            head, head_facts if isinstance(head_facts, NodeFacts) else None,
            self._value(ctx, "python"), self._value(ctx, "ray"))
        for line in pm.matrix([(n.name, facts[n.name]) for n in nodes], target):
            say(line)
        return facts, target, problem

    async def apply(self, ctx: StepContext, plan: Plan[tuple[list[str], str]]) -> Outcome:
        commands, python = plan.given()
        for command in commands:
            result = await ctx.run(command)
            if not result.ok:
                outcome = Outcome.from_result(result)
                outcome.message = f"`{command[:80]}` failed ({outcome.message})"
                return outcome
        note = ""
        if python != ctx.node.python:
            # The step's nodes apply at once, each editing the one file: the edit reads,
            # changes and renames in one synchronous call, so no other node's comes between.
            try:
                note = "; " + self._inventory_note(ctx, python, done=True)
            except InventoryError as exc:
                return Outcome(StepStatus.FAILED, f"now runs {python}, but {exc}",
                               exit_status=0)
        return Outcome(StepStatus.CHANGED, f"now runs {python}{note}", exit_status=0)
