"""kind = "reboot": find out whether the node needs a reboot (saf.recipe.facts.reboot says
what counts); if it does, either stop with that named state and the next action, or, when
`allow` is true, reboot it, wait for SSH to come back with a new boot id, and check again.

Nothing needed: `skipped`. Rebooted and nothing left: `changed`. Needs one and not allowed:
`failed` with "needs a reboot: WHY (next: WHAT)", so the run stops before steps that cannot
work yet; run again with the recipe's reboot variable, or reboot by hand and run again.
Run it with `become = true` (rebooting and modprobe need root).
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from msgspec import Meta

from saf.connect.backoff import Backoff
from saf.errors import ConnectError
from saf.recipe.events import StepStatus
from saf.recipe.facts import flag
from saf.recipe.facts.reboot import BOOT_ID, CHECKS, Reason, reasons, script
from saf.recipe.kinds.base import Fail, Kind, KindParams, Outcome, Plan, StepContext
from saf.recipe.schema import Text
from saf.recipe.values import COMMAND


def _said(found: list[Reason]) -> str:
    return "; ".join(r.line() for r in found)


class RebootParams(KindParams):
    allow: Text = "false"  # "true" reboots the node when it needs it ("false": say so, stop)
    module: Text | None = None  # a kernel module that must load (e.g. nvidia)
    cmdline: Text = ""  # kernel arguments the running kernel must have (e.g. isolcpus=2-7)
    command: Text = "systemctl reboot"  # how to reboot
    wait: Annotated[float, Meta(ge=1, le=7200)] = 900  # seconds for the node to come back
    hint: Text = "allow = true"  # how to allow the reboot, said in the message
    # Which reasons count, of CHECKS, separated by spaces or commas (default: all).
    checks: Text | None = None


class Reboot(Kind[str]):
    name = "reboot"
    own_channels = True  # it watches the node's connection go and come back
    forms = {"allow": "bool", "command": COMMAND, "cmdline": "cmdline", "module": "module"}
    Params = RebootParams

    def __init__(self, allow: str, module: str | None, cmdline: str, command: str,
                 wait: float, hint: str, checks: tuple[str, ...] = CHECKS) -> None:
        self.allow = allow
        self.module = module
        self.cmdline = cmdline
        self.command = command
        self.wait = wait
        self.hint = hint
        self.checks = checks

    @classmethod
    def parse(cls, params: RebootParams, fail: Fail) -> Reboot:
        checks = tuple((params.checks or " ".join(CHECKS)).replace(",", " ").split())
        unknown = [c for c in checks if c not in CHECKS]
        if unknown:
            raise fail("checks", f"unknown check {unknown[0]!r} (checks: {', '.join(CHECKS)})")
        return cls(params.allow, params.module, params.cmdline, params.command,
                   float(params.wait), params.hint, checks)

    def templates(self) -> list[tuple[str, str]]:
        out = [("allow", self.allow), ("command", self.command), ("cmdline", self.cmdline)]
        return out + ([("module", self.module)] if self.module else [])

    def describe(self) -> str:
        return "reboot if needed" + (f" (module {self.module})" if self.module else "")

    async def _reasons(self, ctx: StepContext, check_mode: bool) -> list[Reason]:
        module = ctx.render(self.module, shell=False) if self.module else None
        result = await ctx.run(script(module, check_mode), quiet=True)
        found = reasons(result.stdout, module=module,
                        cmdline=ctx.render(self.cmdline, shell=False).split())
        return [r for r in found if r.check in self.checks]

    async def plan(self, ctx: StepContext) -> Plan[str]:
        found = await self._reasons(ctx, ctx.check_mode)
        if not found:
            return Plan(False, "no reboot needed")
        allowed = flag(ctx.render(self.allow, shell=False))
        command = ctx.render(self.command)  # a shell command: its values quoted
        if not allowed:
            return Plan(True, f"needs a reboot: {_said(found)}; to let saf reboot it: "
                        f"{self.hint}", [], None)
        return Plan(True, f"needs a reboot: {_said(found)}; would reboot it ({command}), wait "
                    f"for SSH and check again", [command], command)

    async def apply(self, ctx: StepContext, plan: Plan[str]) -> Outcome:
        if plan.data is None:
            return Outcome(StepStatus.FAILED, plan.reason)
        before = (await ctx.run(BOOT_ID, quiet=True)).stdout.strip()
        started = time.monotonic()
        try:
            result = await ctx.run(plan.data)
            # Killed by a signal, or no status: the node went down under it. A status other
            # than 0 is the command's own refusal (e.g. "Access denied").
            if result.exit_status not in (0, None) and not result.timed_out:
                outcome = Outcome.from_result(result)
                outcome.message = f"the reboot command failed: {outcome.message}"
                return outcome
        except ConnectError:
            pass  # the node went down under the command: that is the reboot
        backoff = Backoff(initial=1.0, maximum=10.0)
        after = before
        while time.monotonic() - started < self.wait:
            await asyncio.sleep(backoff.next())
            try:
                probe = await ctx.run(BOOT_ID, quiet=True)
            except ConnectError:
                continue  # down, or SSH not up yet
            after = probe.stdout.strip()
            if probe.ok and after and after != before:
                break
        else:
            return Outcome(StepStatus.FAILED, f"the node did not come back with a new boot id "
                           f"within {self.wait:g} s (boot id still {after or 'unknown'})")
        back = time.monotonic() - started
        left = await self._reasons(ctx, False)
        if left:
            return Outcome(StepStatus.FAILED, f"rebooted (back after {back:.0f} s) but still "
                           f"needs a reboot: {_said(left)}")
        return Outcome(StepStatus.CHANGED,
                       f"rebooted; SSH back after {back:.0f} s with a new boot id")
