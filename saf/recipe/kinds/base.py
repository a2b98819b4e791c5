"""What a step kind is: a small class that gathers facts, decides whether anything must
change, and yields the commands that change it.

A kind is parsed once from its step's keys (`parse`), then for each node the runner asks for a
`plan` (facts gathered, nothing changed) and, unless nothing is needed or the run is a
`--check`, calls `apply`. Because deciding and doing are separate, `--check` is honest: it runs
exactly the fact-gathering commands and reports the plan.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import (
    TYPE_CHECKING,
    Annotated,
    Any,
    ClassVar,
    Generic,
    Literal,
    Protocol,
    Self,
    TypeVar,
)

import msgspec
from msgspec import Meta

from saf.connect.base import Connector, Forward, RunResult
from saf.connect.rsync import RsyncResult
from saf.errors import ConfigError
from saf.inventory.model import Inventory, Node
from saf.recipe.events import StepStatus
from saf.recipe.schema import Text

if TYPE_CHECKING:
    from saf.fleet import Fleet

T = TypeVar("T")
Shared = TypeVar("Shared")  # a kind's state shared by the nodes of one step (StepContext.shared)
# What a kind's `plan` leaves for its `apply` on the same node (Plan.data): each kind's own
# type, None for a kind that needs nothing. A frozen Plan only gives it out, so a Plan of a
# part is a Plan of the whole (a helper's Plan[KeptModel] is a Plan[ModelStart | KeptModel]).
D_co = TypeVar("D_co", covariant=True)
D = TypeVar("D")  # a Kind's, which both makes (plan) and takes back (apply) its Plan[D]

Fail = Callable[[str, str], ConfigError]
"""fail(key, message) -> a ConfigError naming the recipe file and the key's line."""


class StepFailed(Exception):
    """A kind found, while gathering facts, that the step cannot succeed on this node (the
    message says why and what to do); the runner ends the step `failed` with it, and with
    `tail` (lines that show why) as the node's last lines of output."""

    def __init__(self, message: str, tail: list[str] | None = None) -> None:
        super().__init__(message)
        self.tail = tail or []


class StepContext(Protocol):
    """What a kind may use on one node; the runner provides it."""

    node: Node
    conn: Connector  # the node's connection (the reboot kind watches it go and come back)
    check_mode: bool
    recipe_folder: Path | None
    run_id: str
    step_nodes: list[Node]  # every node this step runs on, this one included
    inventory: Inventory

    def shared(self, state: type[Shared]) -> Shared:
        """The one `state` (made by `state()` on first ask) that the nodes of this step share
        in this run: a kind that coordinates its nodes, as ray_start does, keeps its state
        there, never on itself. Keyed by its class, so each kind's is its own and typed."""

    def render(self, template: str, *, shell: bool = True) -> str:
        """The template with variables and node facts put in (quoted when shell)."""

    async def run(self, command: str, *, quiet: bool = False, input: str | None = None,
                  via: Connector | None = None, timeout: float | None = None) -> RunResult:  # noqa: ASYNC109 - stops the command, returns its output so far with timed_out set
        """Run a command on the node (with sudo when the step says become); its output is
        streamed as step output unless quiet. `via` runs it over another connection to the
        node (one from fresh_connector); `timeout` stops it after so many seconds."""

    def fresh_connector(self) -> Connector:
        """A new, unpooled connection to the node (the caller closes it): proof that the node
        can be reached again, e.g. after its network changed."""

    async def put(self, local: Path, remote: str, *, mode: int | None = None) -> None:
        """Upload one file."""

    async def transfer(self, args: list[str]) -> RsyncResult:
        """Run local rsync with `args` against the node over saf's connection
        (saf.connect.rsync.run_rsync; the node's side is written remote(path))."""

    async def together(self, work: Callable[[Fleet, list[Node], Callable[[str], None]],
                                            Awaitable[T]]) -> T:
        """Run `work(fleet, step_nodes, say)` ONCE for the whole step, whichever node asks
        first; every node's call gets that run's result (for kinds that act on the cluster
        as one, e.g. a speed test between pairs). `say(line)` is step output."""

    async def forward(self, remote_port: int, remote_host: str = "127.0.0.1", *,
                      via: Node | None = None) -> Forward:
        """A local port reaching `remote_host:remote_port` as seen from this node (or from
        `via`, another node of the inventory) through saf's SSH connection."""


@dataclass(frozen=True)
class Plan(Generic[D_co]):
    """What a kind found: whether anything must change, why, and what it would run; `data`
    is what its `apply` needs of what was found (None on a plan that is not applied)."""

    needed: bool
    reason: str = ""
    commands: list[str] = field(default_factory=list)
    data: D_co | None = None
    # The status when nothing is needed: SKIPPED (already done) or OK (a probe passed).
    done_status: Literal[StepStatus.SKIPPED, StepStatus.OK] = StepStatus.SKIPPED
    # Why the step must not go on on this node (a pre-flight check failed): the node fails
    # with this message, in a --check too, and nothing is applied.
    refusal: str | None = None
    # Nothing of this recipe is for this node (driver-nvidia on a node with no NVIDIA device):
    # this step and every later one skip it with `reason`, instead of failing on what it lacks.
    leaves_node: bool = False

    def given(self) -> D_co:
        """`data`, on a plan its kind applies: the runner applies only a needed plan that is
        not refused, and a kind's `plan` gives every such plan its data (a kind whose needed
        plans may lack it reads `data` and says what its None means)."""
        if self.data is None:
            raise RuntimeError(f"a plan was applied without the data its kind's plan gives "
                               f"it ({self.reason or 'no reason given'})")
        return self.data


@dataclass
class Outcome:
    status: StepStatus
    message: str = ""
    exit_status: int | None = None
    tail: list[str] = field(default_factory=list)

    @classmethod
    def from_result(cls, result: RunResult, *,
                    success: Literal[StepStatus.CHANGED, StepStatus.OK] = StepStatus.CHANGED,
                    ) -> Outcome:
        if result.ok:
            return cls(success, exit_status=0)
        if result.timed_out:
            return cls(StepStatus.FAILED, "timed out", tail=result.tail())
        what = (f"exit status {result.exit_status}" if result.exit_status is not None
                else f"killed by {result.signal or 'a signal'}")
        return cls(StepStatus.FAILED, what, exit_status=result.exit_status, tail=result.tail())



@dataclass(frozen=True)
class CommandFailed:
    """The first of a step's commands that failed (`run_in_order`): its program (the first
    word that is not VAR=value) and what it gave."""

    tool: str
    result: RunResult

    def outcome(self, what: str, tail: list[str] | None = None) -> Outcome:
        """A failed Outcome: "TOOL failed (exit N) WHAT", with the output's tail (or `tail`)."""
        return Outcome(StepStatus.FAILED, f"{self.tool} failed (exit {self.result.exit_status})"
                       + (f" {what}" if what else ""), self.result.exit_status,
                       self.result.tail() if tail is None else tail)


async def run_in_order(ctx: StepContext, commands: Iterable[str]) -> CommandFailed | None:
    """Run `commands` one after another (quiet), stopping at the first that fails: that one,
    or None when every one succeeded."""
    for command in commands:
        result = await ctx.run(command, quiet=True)
        if not result.ok:
            tool = next(w for w in command.split() + [command] if "=" not in w)
            return CommandFailed(tool, result)
    return None

class KindParams(msgspec.Struct, forbid_unknown_fields=True):
    """A kind's own keys, declared once: each field's type, range (`Annotated[..., Meta(ge=,
    le=)]`), choices (`Literal`) and default, with a comment saying what it is for. The
    step's table is decoded with them (saf.recipe.schema.step_model), so a wrong value is
    refused with the file's line, the step and the key before `parse` sees it."""


# A key whose value is checked as text once its {placeholders} are put in (its form, in
# saf.recipe.values), written as a string, a number or true/false: `written` reads it back
# as the text it stands for.
Value = Annotated[Text | int | float | bool, Meta(description="a value or a {var}")]


def written(value: str | int | float | bool) -> str:
    """A Value as text: TOML's true/false as written, a number as Python prints it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Kind(abc.ABC, Generic[D]):
    """A built-in step kind. Subclasses set `name` and `Params` and register in
    kinds/__init__. D is what its `plan` gives its `apply` (Plan.data): a kind names it,
    `class Service(Kind[ServiceData])`, and `apply` reads it with that type."""

    name: ClassVar[str]
    Params: ClassVar[type[KindParams]] = KindParams  # its own keys; none unless declared

    @classmethod
    @abc.abstractmethod
    def parse(cls, params: Any, fail: Fail) -> Self:
        """Build from the step's own keys, decoded as the kind's `Params` (their shape is
        checked); raise fail(key, message) for what is not about shape."""

    @classmethod
    def from_keys(cls, keys: dict[str, Any], fail: Fail) -> Self:
        """Built from its own keys alone, outside a recipe (a recipe's steps are read by
        saf.recipe.parse, whose errors name the file and line)."""
        return cls.parse(msgspec.convert(keys, cls.Params), fail)

    supports_become: ClassVar[bool] = True
    # A collective kind acts on the step's nodes as one (its nodes wait for each other), so
    # the step keys that would leave some nodes out or run them again are refused for it.
    collective: ClassVar[bool] = False
    # The runner sends a node's commands through its one command session
    # (saf.connect.session); a kind whose commands must each have an SSH channel of their own
    # (a reboot that takes the session down, a network change confirmed over a fresh login)
    # says so here, and its `ctx.conn` is the node's pooled connector itself.
    own_channels: ClassVar[bool] = False

    # Each field that takes placeholders, and its form (saf.recipe.values): "command" for
    # shell, whose substituted values are quoted, or the grammar its value must fit. Every
    # key `templates()` returns is here (tests/test_recipe_hostile_fields.py checks it), and
    # prepare checks every field on every node against it before anything runs.
    forms: ClassVar[dict[str, str]] = {}

    def templates(self) -> list[tuple[str, str]]:
        """(key, text) of the parameters that take placeholders."""
        return []

    def read_only(self) -> bool:
        """Whether this step only reads (a probe, a check): under --check it never says
        "would change", since it changes nothing whatever it finds."""
        return False

    def preflight(self, folder: Path | None) -> tuple[str, str] | None:
        """(key, problem) found before anything runs (e.g. a missing local file), or None."""
        return None

    @abc.abstractmethod
    def describe(self) -> str:
        """One line saying what the step does, for listings."""

    @abc.abstractmethod
    async def plan(self, ctx: StepContext) -> Plan[D]: ...

    @abc.abstractmethod
    async def apply(self, ctx: StepContext, plan: Plan[D]) -> Outcome: ...

