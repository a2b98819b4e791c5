"""kind = "gpu": the vendor's own tool sees the GPU. It changes nothing, so it ends `ok`
when it does and `failed` (with what the tool said) when it does not; under `--check` a GPU
not seen yet is what the steps before would change ("would change: not yet ...").

- `vendor = "nvidia"`: `nvidia-smi -L` exits 0 and lists the GPU(s), and NVML answers saf's
  agent: the agent is put on the node (as `saf top` does) and run once; its hello must say
  the NVML collector works.
- `vendor = "intel"`: `clinfo -l` lists an Arc GPU, by name or by PCI id (some drivers name an
  A770 "Intel(R) Graphics [0x56a0]"). With `user`, clinfo runs as that user in a fresh login
  (`su -l USER`, so a group added a moment ago counts; the step needs `become`).
- `vendor = "apple"`: the chip, GPU cores and unified memory from `system_profiler -json
  SPDisplaysDataType SPHardwareDataType`; with `python`, MLX imports in that Python and its
  default device is the GPU.

`expect` is a word the GPU's name must contain (e.g. "3090", "A770").
"""

from __future__ import annotations

import json
from typing import Literal, get_args

from saf.agentlink import deploy
from saf.agentlink.build import build
from saf.agents.protocol import FrameError
from saf.metrics.frames import HelloFrame, check
from saf.recipe.events import StepStatus
from saf.recipe.facts import apple, intel, nvidia
from saf.recipe.kinds.base import Fail, Kind, KindParams, Outcome, Plan, StepContext
from saf.recipe.schema import Text
from saf.recipe.values import COMMAND
from saf.shell import quote

Vendor = Literal["nvidia", "intel", "apple"]
VENDORS: tuple[str, ...] = get_args(Vendor)
MLX_PROBE = "import mlx.core as mx; print(mx.default_device())"


def agent_nvml(output: str) -> tuple[bool, str]:
    """(NVML works, what the agent said) from the agent's first lines (its hello frame)."""
    for line in output.splitlines():
        try:
            frame = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(frame, dict) and frame.get("type") == "hello":
            # The gate's types (not its protocol version: any agent that ran says whether
            # NVML answered it), read as every hello is.
            try:
                hello = check(frame)
            except FrameError as exc:
                return False, f"the agent's hello is malformed: {exc}"
            status = hello.collectors.get("nvml") if isinstance(hello, HelloFrame) \
                and hello.collectors else None
            if status is None:
                break
            if status.ok is True:
                return True, "NVML answers the agent"
            return False, f"NVML does not answer the agent: {status.reason or '?'}"
    return False, "the agent did not start (no hello frame): " + " ".join(output.split())[:200]


class GpuParams(KindParams):
    vendor: Vendor
    expect: Text | None = None  # a word the GPU's name must contain (e.g. 3090, A770)
    user: Text | None = None  # intel: run clinfo as this user in a fresh login (needs become)
    python: Text | None = None  # apple: a Python in which MLX must import and see the GPU
    agent: bool = True  # nvidia: also ask saf's agent whether NVML answers


class Gpu(Kind[str]):
    name = "gpu"
    forms = {"expect": "line", "user": "user", "python": COMMAND}
    Params = GpuParams

    def __init__(self, vendor: str, expect: str | None, user: str | None,
                 python: str | None, agent: bool) -> None:
        self.vendor = vendor
        self.expect = expect
        self.user = user
        self.python = python
        self.agent = agent

    @classmethod
    def parse(cls, params: GpuParams, fail: Fail) -> Gpu:
        vendor = params.vendor
        for key, only in (("user", "intel"), ("python", "apple")):
            if getattr(params, key) is not None and vendor != only:
                raise fail(key, f"{key!r} is for vendor {only!r}")
        return cls(vendor, params.expect, params.user, params.python,
                   params.agent and vendor == "nvidia")

    def templates(self) -> list[tuple[str, str]]:
        return [(k, v) for k, v in (("expect", self.expect), ("user", self.user),
                                    ("python", self.python)) if v]

    def describe(self) -> str:
        return {"nvidia": "nvidia-smi -L lists the GPU and NVML answers the agent",
                "intel": "clinfo -l lists the Arc GPU" + (f" as {self.user}" if self.user
                                                          else ""),
                "apple": "chip, GPU cores, unified memory"
                         + (" and MLX sees the GPU" if self.python else "")}[self.vendor]

    async def _probe(self, ctx: StepContext) -> tuple[bool, str, list[str]]:
        """(seen, what was found or what is wrong, the commands run)."""
        expect = ctx.render(self.expect, shell=False) if self.expect else None
        if self.vendor == "nvidia":
            return await self._nvidia(ctx, expect)
        if self.vendor == "intel":
            return await self._intel(ctx, expect)
        return await self._apple(ctx, expect)

    async def _nvidia(self, ctx: StepContext, expect: str | None) -> tuple[bool, str, list[str]]:
        command = "nvidia-smi -L"
        result = await ctx.run(command + " 2>&1", quiet=True)
        said = " ".join(result.stdout.split())[:300]
        if not result.ok:
            return False, f"nvidia-smi -L failed ({said or result.exit_status})", [command]
        gpus = nvidia.parse_list(result.stdout)
        if not gpus:
            return False, f"nvidia-smi -L lists no GPU ({said or 'nothing'})", [command]
        names = ", ".join(f"GPU {g.index}: {g.name}" for g in gpus)
        if expect and not any(expect in g.name for g in gpus):
            return False, f"no GPU named like {expect!r} ({names})", [command]
        if not self.agent:
            return True, names, [command]
        bundle = build()
        await deploy.ensure(ctx.conn, bundle)
        start = deploy.start_command(ctx.node.python, bundle, interval=0.05) + " --once"
        agent = await ctx.run(start + " 2>&1", quiet=True)
        ok, words = agent_nvml(agent.stdout)
        return ok, f"{names}; {words}", [command, "saf agent --once (its NVML collector)"]

    async def _intel(self, ctx: StepContext, expect: str | None) -> tuple[bool, str, list[str]]:
        command, who = "clinfo -l", ""
        if self.user is not None:
            # An empty user is the one who logged in (sudo keeps their name in SUDO_USER).
            user = ctx.render(self.user, shell=False)
            name = quote(user) if user else '"${SUDO_USER:-$(id -un)}"'
            command = f"su -l {name} -c {quote('clinfo -l')}"
            who = f" as {user}" if user else " as the login user"
        result = await ctx.run(command + " 2>&1", quiet=True)
        said = " ".join(result.stdout.split())[:300]
        if not result.ok:
            return False, f"clinfo -l{who} failed ({said or result.exit_status})", [command]
        devices = intel.parse_list(result.stdout)
        arcs = [d for d in devices if d.arc]
        if not arcs:
            listed = ", ".join(d.name for d in devices) or "no device"
            return False, (f"clinfo -l{who} lists no Arc GPU ({listed}); is the user in the "
                           "render group, and the compute runtime installed?"), [command]
        names = ", ".join(f"{d.arc} ({d.name})" for d in arcs)
        if expect and not any(expect in f"{d.arc} {d.name}" for d in arcs):
            return False, f"no Arc GPU named like {expect!r} ({names})", [command]
        return True, f"clinfo -l{who} lists {names}", [command]

    async def _apple(self, ctx: StepContext, expect: str | None) -> tuple[bool, str, list[str]]:
        command = "system_profiler -json SPDisplaysDataType SPHardwareDataType"
        result = await ctx.run(command, quiet=True)
        if not result.ok:
            return False, f"system_profiler failed ({result.stderr.strip()[:200]})", [command]
        try:
            chip = apple.parse_profile(result.stdout)
        except ValueError as exc:
            return False, str(exc), [command]
        if expect and expect not in chip.chip:
            return False, f"the chip is {chip.chip}, not {expect}", [command]
        if not self.python:
            return True, chip.line(), [command]
        python = ctx.render(self.python)
        mlx = f"{python} -c {quote(MLX_PROBE)}"
        probe = await ctx.run(mlx + " 2>&1", quiet=True)
        said = " ".join(probe.stdout.split())[-300:]
        if not probe.ok:
            return False, f"{chip.line()}; MLX does not import ({said})", [command, mlx]
        if "gpu" not in said.lower():
            return False, f"{chip.line()}; MLX's default device is not the GPU ({said})", \
                [command, mlx]
        return True, f"{chip.line()}; MLX sees {said}", [command, mlx]

    def read_only(self) -> bool:
        return True

    async def plan(self, ctx: StepContext) -> Plan[str]:
        seen, words, commands = await self._probe(ctx)
        if seen:
            return Plan(False, words, done_status=StepStatus.OK)
        return Plan(True, f"not yet: {words}", commands, words)

    async def apply(self, ctx: StepContext, plan: Plan[str]) -> Outcome:
        return Outcome(StepStatus.FAILED, plan.given())
