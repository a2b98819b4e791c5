"""kind = "net_test": a speed test between the step's nodes (saf.net.engine), run once for
the whole step; each node's outcome tells its own links. Keys may use the recipe's variables
(`streams = "{streams}"`), so `saf net test` and `saf run netperf` are one engine.

`--check` measures nothing and says what would run: the pairs, the rounds and about how long.
A node ends `failed` when a test of one of its links failed; warnings (a link well under its
line rate, retransmits) are in the run's output and the saved result.
"""

from __future__ import annotations

from typing import Annotated, Any

from msgspec import Meta

from saf.format import fmt_gbps, fmt_link, fmt_percent
from saf.inventory.model import Node
from saf.net import store
from saf.net.engine import NetOptions, new_result, run_net_test, schedule_line
from saf.net.results import NetResult
from saf.recipe.events import StepStatus
from saf.recipe.kinds.base import Fail, Kind, KindParams, Outcome, Plan, StepContext

DEFAULTS = {"pairs": "all", "streams": "4", "duration": "5", "warmup": "1", "tool": "saf"}
# Each key may be a {var} (`streams = "{streams}"`), so each is text or a number here; what it
# must be (NetOptions.problem) is checked by parse when none is a {var}, else when it runs.
Word = Annotated[str | int | float, Meta(description="a string or a number")]


class NetTestParams(KindParams):
    pairs: Word = DEFAULTS["pairs"]  # all (every pair) or star (the head with each other node)
    streams: Word = DEFAULTS["streams"]  # parallel streams of the second test (the first: 1)
    duration: Word = DEFAULTS["duration"]  # counted seconds per test and direction
    warmup: Word = DEFAULTS["warmup"]  # uncounted seconds before each test
    tool: Word = DEFAULTS["tool"]  # saf (the agent's tester) or iperf3 (where both ends have it)


class NetTest(Kind[NetOptions]):
    name = "net_test"
    forms = {"pairs": "word", "streams": "word", "duration": "word", "warmup": "word",
             "tool": "word"}
    Params = NetTestParams
    supports_become = False

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    @classmethod
    def parse(cls, params: NetTestParams, fail: Fail) -> NetTest:
        values = {key: str(getattr(params, key)) for key in DEFAULTS}
        if not any("{" in v for v in values.values()):
            problem = _options(values)[1]
            if problem:
                raise fail(next((k for k in values if k in problem), "pairs"), problem)
        return cls(values)

    def templates(self) -> list[tuple[str, str]]:
        return [(k, v) for k, v in self.values.items() if "{" in v]

    def describe(self) -> str:
        v = {k: ("?" if "{" in value else value) for k, value in self.values.items()}
        if all(value == "?" for value in v.values()):
            return "speed test between the nodes (set by the recipe's variables)"
        return (f"speed test between {v['pairs']} pairs ({v['tool']}, 1 and {v['streams']} "
                f"streams, {v['duration']} s each way)")

    def read_only(self) -> bool:
        return True  # it measures; nothing on the nodes changes

    async def plan(self, ctx: StepContext) -> Plan[NetOptions]:
        values = {k: ctx.render(v, shell=False) for k, v in self.values.items()}
        options, problem = _options(values)
        if problem or options is None:
            return Plan(True, refusal=problem or "bad options")
        if len(ctx.step_nodes) < 2:
            return Plan(True, refusal="a speed test needs at least two nodes")
        result = new_result(ctx.step_nodes, options, run_id=ctx.run_id, cluster="")
        return Plan(True, "would run: " + schedule_line(result, options), data=options)

    async def apply(self, ctx: StepContext, plan: Plan[NetOptions]) -> Outcome:
        if plan.data is None:
            return Outcome(StepStatus.FAILED, plan.reason)
        options = plan.data

        async def work(fleet: Any, nodes: list[Node], say: Any) -> Any:
            return await run_net_test(fleet, nodes, options, run_id=ctx.run_id, say=say,
                                      update=_save)

        result = await ctx.together(work)
        mine = [m for m in result.measurements if ctx.node.name in (m.sender, m.receiver)]
        link = result.links.get(ctx.node.name)
        if link is not None and link.error:
            return Outcome(StepStatus.FAILED, link.error)
        failed = [m for m in mine if not m.ok]
        if failed:
            m = failed[0]
            return Outcome(StepStatus.FAILED, f"{m.sender} → {m.receiver}: {m.error}"
                           + (f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""))
        best = [m for m in mine if m.streams == result.streams]
        if not best:
            return Outcome(StepStatus.OK, "no link of this node was measured")
        slow = min(best, key=lambda m: m.bits_per_second or 0)
        line = result.line_rate_mbps(slow.sender, slow.receiver)
        frac = f" ({fmt_percent(result.fraction(slow))} of {fmt_link(line)})" if line else ""
        return Outcome(StepStatus.OK, f"{len(best)} directions; slowest {slow.sender} → "
                       f"{slow.receiver} {fmt_gbps(slow.bits_per_second)} Gbit/s{frac}")


def _save(result: NetResult) -> None:
    store.save(result)


def _options(values: dict[str, str]) -> tuple[NetOptions | None, str | None]:
    try:
        options = NetOptions(pairs=values["pairs"], streams=_number(values["streams"], int),
                             duration=_number(values["duration"], float),
                             warmup=_number(values["warmup"], float), tool=values["tool"])
    except ValueError as exc:
        return None, str(exc)
    return options, options.problem()


def _number(text: str, kind: type) -> Any:
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a {'whole ' if kind is int else ''}number") from None
