"""The runner: a prepared recipe's steps in order; within a step, its nodes in parallel (or
one by one when `serial`). Every step on every node ends ok, changed, skipped, failed or
cancelled, and everything that happens is an event.

A node's commands go through one command session per run (saf.connect.session): one SSH
channel for all of them instead of one each, unless the step's kind needs channels of its own
(`Kind.own_channels`) or the node's python cannot run the session (said once, as the node's
output, and the node's commands take a channel each).

Cancelling the task that runs `Runner.run()` (Ctrl-C, or the cockpit's cancel) cancels every
node's command; the connector stops the remote process group, and the runner records the nodes
that did not finish as `cancelled` and the run as `cancelled` before the cancellation goes on.
"""

from __future__ import annotations

import asyncio
import os
import secrets as tokens
import time
import traceback
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from saf import secrets
from saf.connect import become as sudo
from saf.connect.base import Connector, Forward, RunResult
from saf.connect.rsync import RsyncResult, run_rsync
from saf.connect.session import CommandSessions
from saf.errors import ConnectError, UsageError
from saf.events import Emit, Event
from saf.fanout import fan_out, results
from saf.fleet import Fleet
from saf.inventory.model import Node
from saf.recipe.events import (
    NodeStepFinished,
    NodeStepStarted,
    RunFinished,
    RunStarted,
    RunStatus,
    StepFinished,
    StepInfo,
    StepOutput,
    StepStarted,
    StepStatus,
)
from saf.recipe.kinds.base import Outcome, Shared, StepFailed
from saf.recipe.kinds.shell import Shell
from saf.recipe.log import process_started
from saf.recipe.model import Step
from saf.recipe.prepare import Prepared
from saf.recipe.substitute import Facts, render, shell_path
from saf.shell import check_command_size

T = TypeVar("T")
Together = Callable[[Fleet, list[Node], Callable[[str], None]], Awaitable[T]]
"""work(fleet, the step's nodes, say) -> a result: what a kind runs once for a whole step."""

AskPassword = Callable[[str], Awaitable[str | None]]
"""ask(prompt) -> the sudo password, or None when the user declines. It may raise
BecomeError with a message saying why there is no password (e.g. no terminal to ask on).
It is called at most once per run."""


@dataclass
class _Tried:
    """One attempt's end: its outcome, what it would run (--check), whether a bug in saf
    ended it, and (looked ahead) the output it said, kept for its step's turn."""

    outcome: Outcome
    would: list[str] = field(default_factory=list)
    bug: bool = False
    said: list[Event] = field(default_factory=list)
    leaves: str | None = None  # the plan said the rest of its recipe is not for the node


class BecomeError(Exception):
    """Root was asked for and cannot be had on this node."""


class _NodeContext:
    """What a step kind sees of one node (saf.recipe.kinds.base.StepContext)."""

    def __init__(self, runner: Runner, step: Step, node: Node, conn: Connector,
                 emit: Emit | None = None) -> None:
        self.runner = runner
        # Where this node's step output goes: the run's events, or (a look-ahead, see
        # Runner.look_ahead) kept until the step's turn comes.
        self.emit: Emit = emit if emit is not None else runner.emit
        self.step = step
        self.node = node
        self.conn = conn
        self.check_mode = runner.check
        # An included step's `upload` sources are beside the recipe it is written in.
        self.recipe_folder = (step.origin or runner.prepared.recipe).folder
        self.inventory = runner.prepared.inventory
        self._shared = runner.shared(step)
        self.facts = Facts(runner.prepared.variables_for(step), node, runner.prepared.inventory)
        self.run_id = runner.run_id
        self.step_nodes = list(runner.prepared.targets[step.index])
        self.leaves: str | None = None  # why the rest of the step's recipe is not for the node

    def shared(self, state: type[Shared]) -> Shared:
        got = self._shared.get(state)
        if not isinstance(got, state):
            got = self._shared[state] = state()
        return got

    def render(self, template: str, *, shell: bool = True) -> str:
        return render(template, self.facts, shell=shell)

    async def run(self, command: str, *, quiet: bool = False, input: str | None = None,
                  skip_marker: str | None = None, via: Connector | None = None,
                  timeout: float | None = None) -> RunResult:  # noqa: ASYNC109 - stops the command, returns its output so far with timed_out set
        try:  # prepare checked every field; this is what a kind built from them
            check_command_size(command)
        except UsageError as exc:
            raise StepFailed(str(exc)) from None
        if self.step.become:
            mode = await self.runner.sudo_mode(self.node, self.conn)
            command = sudo.wrap(command, mode)
            if mode == "password":
                input = await self.runner.password()
                await self.runner.verify_password(self.node, self.conn, input)
        step, node, emit = self.step.index, self.node.name, self.emit

        def output(stream: str, line: str) -> None:
            if skip_marker is None or line != skip_marker:
                emit(StepOutput(step=step, node=node, stream=stream, line=line))

        return await (via or self.conn).run(command, on_output=None if quiet else output,
                                            input=input, timeout=timeout)

    def fresh_connector(self) -> Connector:
        return self.runner.fleet.fresh_connector(self.node)

    async def put(self, local: Path, remote: str, *, mode: int | None = None) -> None:
        await self.conn.put(local, remote, mode=mode)

    async def transfer(self, args: list[str]) -> RsyncResult:
        return await run_rsync(self.conn, args)

    async def together(self, work: Together[T]) -> T:
        """Run `work(fleet, step_nodes, say)` once for the whole step; every node's call
        awaits that one run. `say(line)` is step output under the step's first node."""
        index = self.step.index
        task = self.runner._together.get(index)
        if task is None:
            first = self.step_nodes[0].name
            emit = self.emit

            def say(line: str) -> None:
                emit(StepOutput(step=index, node=first, stream="stdout", line=line))

            task = asyncio.ensure_future(work(self.runner.fleet, self.step_nodes, say))
            self.runner._together[index] = task
        return await asyncio.shield(task)

    async def forward(self, remote_port: int, remote_host: str = "127.0.0.1", *,
                      via: Node | None = None) -> Forward:
        conn = self.conn if via is None else self.runner.fleet.connector(via)
        return await conn.forward(remote_port, remote_host)


class Runner:
    def __init__(self, prepared: Prepared, fleet: Fleet, emit: Emit, *, run_id: str,
                 check: bool = False, start_step: int = 0, resumed_from: str | None = None,
                 ask_password: AskPassword | None = None,
                 sessions: CommandSessions | None = None, look_ahead: bool = False) -> None:
        self.prepared = prepared
        self.fleet = fleet
        # The one gate every event of a run passes: each secret saf knows (saf.secrets) is
        # `***` in what the run log, the views, the cockpit and the hub get.
        self.emit: Emit = lambda event: emit(secrets.scrub(event))
        self.run_id = run_id
        self.check = check
        self.start_step = start_step
        self.resumed_from = resumed_from
        self.ask_password = ask_password
        self.counts: Counter[str] = Counter()
        self._sudo: dict[str, str] = {}
        self._sudo_locks: dict[str, asyncio.Lock] = {}
        self._password: str | None = None
        self._password_refused: str | None = None  # why there is none; not asked again
        self._password_lock = asyncio.Lock()
        self._verified: dict[str, str | None] = {}  # node -> sudo's refusal, or None
        self._together: dict[int, asyncio.Future[Any]] = {}  # step -> its one shared run
        self._shared: dict[int, dict[type, object]] = {}  # step -> state class -> its state
        # (node, the recipe it left: a step's scope) -> why the rest of that recipe is not
        # for the node: only the included recipe a node leaves is skipped, not its includer.
        self._left: dict[tuple[str, tuple[str, ...]], str] = {}
        # Each node's command session: the run's own, or given (and then left open: its
        # owner runs more than this run through them).
        self._own_sessions = sessions is None
        self._sessions = sessions if sessions is not None else CommandSessions()
        self._adopted: set[str] = set()  # the nodes whose session this run has used
        self._current = 0  # the step running now: a session's fallback is said under it
        # --check only: every step's plan on every node started at once (nothing is changed,
        # so no plan waits for an earlier step's); each is taken, its output said, in turn.
        self.look_ahead = look_ahead and check
        self._ahead: dict[tuple[int, str], asyncio.Task[_Tried]] = {}

    def connector(self, step: Step, node: Node) -> Connector:
        """The connector a step's commands on `node` run through: the node's command session,
        or its pooled connector for a kind whose commands need channels of their own."""
        plain = self.fleet.connector(node)
        if step.kind.own_channels:
            return plain
        session = self._sessions.of(plain)
        if node.name not in self._adopted:
            self._adopted.add(node.name)

            def fell_back(why: str) -> None:
                self.emit(StepOutput(step=self._current, node=node.name, stream="stderr",
                                     line=f"saf: {why}"))

            session.on_fallback = fell_back
            if session.fallback is not None:  # found before this run: said in it too
                fell_back(session.fallback)
        return session

    async def close_sessions(self) -> dict[str, dict[str, int]]:
        """End every node's command session (what they still run is stopped on the node),
        unless they were given: their owner ends them. Node -> its sessions' bad frames by
        reason, for the nodes that sent any (given sessions: since they were made)."""
        bad = {node: counts for node, counts in self._sessions.bad_frames().items()
               if node in self._adopted}
        if self._own_sessions:
            await self._sessions.close()
        return bad

    def shared(self, step: Step) -> dict[type, object]:
        """What the nodes of one step share in this run, by state class (StepContext.shared)."""
        return self._shared.setdefault(step.index, {})

    # -- become ---------------------------------------------------------------------------
    async def sudo_mode(self, node: Node, conn: Connector) -> str:
        lock = self._sudo_locks.setdefault(node.name, asyncio.Lock())
        async with lock:
            if node.name not in self._sudo:
                result = await conn.run(sudo.PROBE)
                self._sudo[node.name] = result.stdout.strip() or "nosudo"
        mode = self._sudo[node.name]
        if mode == "nosudo":
            raise BecomeError("become: the node has no sudo and saf is not root there")
        return mode

    async def password(self) -> str:
        """The sudo password, asked for once per run however many nodes need it."""
        async with self._password_lock:
            if self._password is None and self._password_refused is None:
                try:
                    if self.ask_password is None:
                        raise BecomeError(
                            "become: sudo needs a password and there is no one to ask (allow "
                            "NOPASSWD in sudoers, or run interactively)")
                    answer = await self.ask_password(
                        f"sudo password for the nodes of {self.prepared.recipe.name!r}: ")
                    if answer is None:
                        raise BecomeError("become: no sudo password given")
                except BecomeError as exc:
                    self._password_refused = str(exc)
                    raise
                self._password = answer
            if self._password is None:
                raise BecomeError(self._password_refused or "become: no sudo password")
            return self._password

    async def verify_password(self, node: Node, conn: Connector, password: str) -> None:
        """Check once per node that sudo takes the password (see become.VERIFY)."""
        async with self._sudo_locks.setdefault(node.name, asyncio.Lock()):
            if node.name not in self._verified:
                result = await conn.run(sudo.VERIFY, input=password)
                self._verified[node.name] = None if result.ok else sudo.refusal(result.stderr)
        refused = self._verified[node.name]
        if refused is not None:
            raise BecomeError(f"become: sudo on {node.name} refused the password ({refused})")

    # -- one step on one node -------------------------------------------------------------
    async def _fused(self, ctx: _NodeContext) -> Outcome:
        """A shell step's check (or creates) and command in one remote call: half the
        round trips. The check's output is discarded; when it passes, the script prints a
        one-off marker instead of running the command."""
        step = ctx.step
        marker = f"saf-skip-{tokens.token_hex(8)}"
        if step.check:
            test, why = ctx.render(step.check), "check passed: nothing to do"
        else:
            path = ctx.render(step.creates or "", shell=False)
            test, why = f"test -e {shell_path(path)}", f"{path} exists"
        # Only shell steps are fused (their kind has `command`); step.kind is any kind's type.
        command = ctx.render(step.kind.command)  # type: ignore[attr-defined]
        script = (f"if {{ {test}\n}} </dev/null >/dev/null 2>&1; then echo {marker}; exit 0; fi\n"
                  + command)
        result = await ctx.run(script, skip_marker=marker)
        if result.stdout.startswith(marker + "\n"):
            return Outcome(StepStatus.SKIPPED, why)
        return Outcome.from_result(result)

    async def _attempt(self, ctx: _NodeContext) -> tuple[Outcome, list[str]]:
        step = ctx.step
        if not self.check and isinstance(step.kind, Shell) and (step.check or step.creates) \
                and not (step.check and step.creates):
            return await self._fused(ctx), []
        if step.check:
            if (await ctx.run(ctx.render(step.check), quiet=True)).ok:
                return Outcome(StepStatus.SKIPPED, "check passed: nothing to do"), []
        if step.creates:
            path = ctx.render(step.creates, shell=False)
            if (await ctx.run(f"test -e {shell_path(path)}", quiet=True)).ok:
                return Outcome(StepStatus.SKIPPED, f"{path} exists"), []
        plan = await step.kind.plan(ctx)
        if plan.refusal is not None:
            return Outcome(StepStatus.FAILED, plan.refusal), []
        if not plan.needed:
            if plan.leaves_node:  # the runner keeps it when this step's turn comes
                ctx.leaves = plan.reason
            return Outcome(plan.done_status, plan.reason), []
        if self.check and step.kind.read_only():
            if isinstance(step.kind, Shell):  # a command that only reads is its own check
                return await step.kind.apply(ctx, plan), []
            # A probe that would wait, measure or look again: it would change nothing.
            return Outcome(StepStatus.SKIPPED, f"--check: not run ({plan.reason})"), plan.commands
        if self.check:
            # shown as "would change"
            return Outcome(StepStatus.CHANGED, plan.reason), plan.commands
        return await step.kind.apply(ctx, plan), []

    async def _node(self, step: Step, node: Node) -> StepStatus:
        started = time.monotonic()
        left = next((self._left[key] for depth in range(len(step.scope) + 1)
                     if (key := (node.name, step.scope[:depth])) in self._left), None)
        if left is not None:
            self._finish(step, node, Outcome(StepStatus.SKIPPED, left), started, 0)
            return StepStatus.SKIPPED
        ahead = self._ahead.pop((step.index, node.name), None)
        ctx = _NodeContext(self, step, node, self.connector(step, node))
        outcome = Outcome(StepStatus.FAILED, "did not run")
        would: list[str] = []
        attempt = 0
        try:
            for attempt in range(1, step.retries + 2):
                if attempt > 1:
                    await asyncio.sleep(step.delay)
                self.emit(NodeStepStarted(step=step.index, node=node.name, attempt=attempt))
                if ahead is not None:  # the first attempt, started with every other plan
                    tried, ahead = await ahead, None
                    for event in tried.said:
                        self.emit(event)
                else:
                    tried = await self._try(ctx)
                outcome, would = tried.outcome, tried.would
                if tried.leaves is not None:
                    self._left[node.name, step.scope] = tried.leaves
                if tried.bug or outcome.status != StepStatus.FAILED:
                    break  # done (a bug in saf is not worth a retry)
        except asyncio.CancelledError:
            self._finish(step, node, Outcome(StepStatus.CANCELLED, "cancelled"), started, attempt)
            raise
        self._finish(step, node, outcome, started, attempt, would)
        return outcome.status

    async def _try(self, ctx: _NodeContext) -> _Tried:
        """One attempt of the step on the node, within the step's timeout; whatever goes
        wrong is the node's outcome."""
        step = ctx.step
        try:
            async with asyncio.timeout(step.timeout):
                outcome, would = await self._attempt(ctx)
            return _Tried(outcome, would, leaves=ctx.leaves)
        except TimeoutError:
            return _Tried(Outcome(StepStatus.FAILED, f"timed out after {step.timeout:g} s"))
        except ConnectError as exc:
            return _Tried(Outcome(StepStatus.FAILED, f"{exc.reason}: {exc.detail}"))
        except StepFailed as exc:
            return _Tried(Outcome(StepStatus.FAILED, str(exc), tail=exc.tail))
        except (BecomeError, OSError) as exc:
            return _Tried(Outcome(StepStatus.FAILED, str(exc)))
        except Exception as exc:  # noqa: BLE001 - a kind's bug, or output it could not
            # read, fails this node with its name: never the whole run.
            return _Tried(Outcome(StepStatus.FAILED, f"saf's {step.kind.name} step broke on "
                                  f"this node: {type(exc).__name__}: {exc}",
                                  tail=traceback.format_exception(exc)[-6:]), bug=True)

    def _start_ahead(self) -> None:
        """Start the first attempt of every step on every node at once (look_ahead), at
        most the fleet's concurrency at a time, in step order."""
        gate = asyncio.Semaphore(self.fleet.concurrency)

        async def one(step: Step, node: Node) -> _Tried:
            said: list[Event] = []
            async with gate:
                tried = await self._try(_NodeContext(self, step, node,
                                                     self.connector(step, node), said.append))
            tried.said = said
            return tried

        for step in self.prepared.recipe.steps:
            if step.index < self.start_step:  # done in the run this one resumes
                continue
            for node in self.prepared.targets[step.index]:
                self._ahead[step.index, node.name] = asyncio.ensure_future(one(step, node))

    async def _drop_ahead(self) -> None:
        """Stop the plans looked ahead that were not taken (a node that left a recipe, a
        step after one that stopped the run): their output is never said."""
        ahead, self._ahead = list(self._ahead.values()), {}
        for task in ahead:
            task.cancel()
        await asyncio.gather(*ahead, return_exceptions=True)

    def _finish(self, step: Step, node: Node, outcome: Outcome, started: float, attempts: int,
                would: list[str] | None = None) -> None:
        self.counts[outcome.status] += 1
        self.emit(NodeStepFinished(step=step.index, node=node.name, status=outcome.status,
                                   duration=time.monotonic() - started,
                                   message=outcome.message, exit_status=outcome.exit_status,
                                   tail=outcome.tail, attempts=max(attempts, 1),
                                   would=would or []))

    # -- the run --------------------------------------------------------------------------
    async def _step(self, step: Step) -> list[StepStatus]:
        nodes = self.prepared.targets[step.index]
        self._current = step.index
        self.emit(StepStarted(step=step.index, name=step.name, nodes=[n.name for n in nodes],
                              reason="" if nodes else self.prepared.empty.get(step.index, "")))
        statuses: list[StepStatus] = []
        if step.serial:
            pending = list(nodes)
            try:
                while pending:
                    statuses.append(await self._node(step, pending[0]))
                    pending.pop(0)
                    if statuses[-1] == StepStatus.FAILED and step.on_failure == "stop":
                        break
            except asyncio.CancelledError:
                for node in pending[1:]:
                    self._finish(step, node, Outcome(StepStatus.CANCELLED, "not started"),
                                 time.monotonic(), 0)
                raise
        else:
            statuses = results(await fan_out(nodes, lambda node: self._node(step, node),
                                             limit=self.fleet.concurrency))
        self.emit(StepFinished(step=step.index, name=step.name, counts=dict(Counter(statuses))))
        return statuses

    def started_event(self) -> RunStarted:
        recipe = self.prepared.recipe
        return RunStarted(
            run=self.run_id, recipe=recipe.name,
            path=str(recipe.path) if recipe.path else None,
            cluster=self.fleet.inventory.cluster.name, description=recipe.description,
            vars=dict(self.prepared.variables), selector=self.prepared.selector,
            check=self.check,
            steps=[StepInfo(index=s.index, name=s.name, describe=s.kind.describe(),
                            kind=s.kind.name, on=s.on, on_failure=s.on_failure,
                            nodes=[n.name for n in self.prepared.targets[s.index]])
                   for s in recipe.steps],
            nodes=self.prepared.nodes, pid=os.getpid(), pid_started=process_started(),
            resumed_from=self.resumed_from, start_step=self.start_step)

    async def run(self) -> RunStatus:
        """Run the recipe; the final status: OK, FAILED or (raising) cancelled."""
        began = time.monotonic()
        self.emit(self.started_event())
        status = RunStatus.OK
        try:
            if self.look_ahead:
                self._start_ahead()
            for step in self.prepared.recipe.steps:
                if step.index < self.start_step:
                    for node in self.prepared.targets[step.index]:
                        self._finish(step, node, Outcome(
                            StepStatus.SKIPPED, f"done in run {self.resumed_from}"),
                            time.monotonic(), 0)
                    continue
                statuses = await self._step(step)
                if StepStatus.FAILED in statuses and step.on_failure == "stop":
                    status = RunStatus.FAILED
                    break
        except asyncio.CancelledError:
            for task in self._together.values():
                task.cancel()
            await asyncio.shield(self._drop_ahead())
            bad = await asyncio.shield(self.close_sessions())
            self.emit(RunFinished(run=self.run_id, status=RunStatus.CANCELLED,
                                  duration=time.monotonic() - began, counts=dict(self.counts),
                                  message="cancelled by the user", bad_frames=bad))
            raise
        except BaseException:
            await asyncio.shield(self._drop_ahead())
            await asyncio.shield(self.close_sessions())
            raise
        await self._drop_ahead()
        bad = await self.close_sessions()
        self.emit(RunFinished(run=self.run_id, status=status,
                              duration=time.monotonic() - began, counts=dict(self.counts),
                              bad_frames=bad))
        return status

