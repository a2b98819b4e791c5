"""The speed-test engine: every scheduled pair measured over the cluster addresses, by saf's
own tester (the agent's `netperf`, agents/netperf.py) or by iperf3 where both ends have it.

    result = await run_net_test(fleet, nodes, NetOptions(pairs="all", streams=4), run_id=...,
                                say=print, update=store.save)

First each node's agent (deployed as for metrics) reports the interface carrying its cluster
address (MTU, link speed) and whether iperf3 is there. Then the schedule's rounds run one after
another, the pairs of a round at once (no node is in two of them). For a pair (a, b) a server
starts on b, bound to b's cluster address, and a's client runs the tests: 1 and N streams, a to
b and b to a, each a warm-up then `duration` counted seconds. The server serves that one
client and exits; stopping its channel also ends it (it exits on stdin EOF), so nothing is
left listening. Every measurement lands in the result as it arrives (`update` is called with
the whole result each time, to save it and let a screen fill its matrix in).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from saf.agentlink import deploy
from saf.agentlink.build import AgentBundle, build
from saf.connect.base import Connector, RemoteProcess
from saf.deadline import within
from saf.defaults import NET_TOOLS
from saf.errors import ConnectError, UsageError
from saf.fleet import Fleet
from saf.format import fmt_gbps, fmt_link, fmt_ms, fmt_percent
from saf.inventory.model import Node
from saf.net import iperf3
from saf.net.results import Measurement, NetResult, NodeLink
from saf.net.schedule import PAIRS, schedule
from saf.numbers import number_problem
from saf.shell import program, quote

TOOLS = NET_TOOLS
START_TIMEOUT = 30.0   # seconds for a server to say it listens
SLACK = 20.0           # seconds a client may take beyond its tests' own time

Say = Callable[[str], None]
Update = Callable[[NetResult], None]


@dataclass(frozen=True)
class NetOptions:
    pairs: str = "all"
    streams: int = 4
    duration: float = 5.0
    warmup: float = 1.0
    tool: str = "saf"

    def problem(self) -> str | None:
        """What is wrong with these options (for a CLI flag or a recipe key), or None."""
        if self.pairs not in PAIRS:
            return f"pairs must be {' or '.join(PAIRS)}, not {self.pairs!r}"
        if self.tool not in TOOLS:
            return f"tool must be {' or '.join(TOOLS)}, not {self.tool!r}"
        for name, value, low, high, integer in (("streams", self.streams, 1, 128, True),
                                                ("duration", self.duration, 0.1, 3600, False),
                                                ("warmup", self.warmup, 0, 600, False)):
            why = number_problem(value, low=low, high=high, integer=integer)
            if why:
                return f"{name} {why}"
        return None

    def tests(self) -> list[tuple[int, bool]]:
        """(streams, reverse) for a pair, in the order they run."""
        return [(n, reverse) for n in sorted({1, self.streams}) for reverse in (False, True)]


def _agent(node: Node, bundle: AgentBundle) -> str:
    return f"{program(node.python)} {deploy.remote_path_expr(bundle)} netperf"


class _Pair:
    """One pair's tests: a server on `b`, a client on `a`."""

    def __init__(self, engine: _Engine, a: Node, b: Node, tool: str) -> None:
        self.engine = engine
        self.a, self.b = a, b
        self.tool = tool
        self.ca, self.cb = engine.fleet.connector(a), engine.fleet.connector(b)
        self.opts = engine.options

    def _record(self, m: Measurement) -> None:
        self.engine.add(m)

    def _fail_rest(self, done: set[tuple[int, bool]], why: str) -> None:
        for n, reverse in self.opts.tests():
            if (n, reverse) not in done:
                sender, receiver = (self.b, self.a) if reverse else (self.a, self.b)
                self._record(Measurement(sender.name, receiver.name, n, self.tool, error=why))

    async def run(self) -> None:
        done: set[tuple[int, bool]] = set()
        try:
            if self.tool == "iperf3":
                await self._iperf3(done)
            else:
                await self._saf(done)
        except ConnectError as exc:
            self._fail_rest(done, f"{exc.reason}: {exc.detail}")
        except (OSError, ValueError, iperf3.Iperf3Error) as exc:
            self._fail_rest(done, str(exc))
        except TimeoutError:
            self._fail_rest(done, "timed out")

    async def _read_json(self, process: RemoteProcess, what: str) -> dict[str, Any]:
        line = await within(process.readline(), START_TIMEOUT)
        try:
            data = json.loads(line)
        except ValueError:
            err = (await process.stderr_text()).strip().splitlines()[-1:] if not line else []
            raise OSError(f"{what} did not start: "
                          f"{(err or [line.strip() or 'no output'])[0]}") from None
        if not isinstance(data, dict):
            raise OSError(f"{what} answered {line.strip()!r}")
        if isinstance(data.get("error"), str):
            raise OSError(f"{what}: {data['error']}")
        return data

    async def _saf(self, done: set[tuple[int, bool]]) -> None:
        bundle = self.engine.bundle
        server = await self.cb.start(
            f"exec {_agent(self.b, bundle)} serve --bind {quote(self.b.host)} "
            f"--timeout {START_TIMEOUT:g}")
        try:
            hello = await self._read_json(server, f"the tester on {self.b.name}")
            port, address, token = hello.get("listening"), hello.get("address"), hello.get("token")
            if not (isinstance(port, int) and 0 < port < 65536 and isinstance(address, str)
                    and isinstance(token, str) and token.isalnum() and len(token) <= 64):
                raise OSError(f"the tester on {self.b.name} answered {hello!r}")
            tests = ",".join(f"{n}:{'recv' if r else 'send'}" for n, r in self.opts.tests())
            command = (f"{_agent(self.a, bundle)} client --connect {quote(address)} "
                       f"--port {port} --token {quote(token)} --tests {quote(tests)} "
                       f"--warmup {self.opts.warmup:g} --duration {self.opts.duration:g}")
            rtt: list[float | None] = [None]
            problems: list[str] = []
            order = self.opts.tests()

            def line(stream: str, text: str) -> None:
                if stream != "stdout":
                    return
                try:
                    data = json.loads(text)
                except ValueError:
                    return
                if not isinstance(data, dict):
                    return
                if "rtt_ms" in data:
                    rtt[0] = _positive(data.get("rtt_ms"))
                elif isinstance(data.get("error"), str):
                    problems.append(data["error"])
                elif "streams" in data and len(done) < len(order):
                    self._saf_measurement(data, rtt[0], order, done)

            limit = len(order) * (self.opts.warmup + self.opts.duration + 2) + SLACK
            result = await self.ca.run(command, on_output=line, timeout=limit)
            if len(done) < len(order):
                why = problems[0] if problems else (
                    "timed out" if result.timed_out else
                    f"the client on {self.a.name} ended early: "
                    f"{(result.tail(1) or ['exit status %s' % result.exit_status])[0]}")
                self._fail_rest(done, why)
        finally:
            await server.stop()

    def _saf_measurement(self, data: dict[str, Any], rtt: float | None,
                         order: list[tuple[int, bool]], done: set[tuple[int, bool]]) -> None:
        n, reverse = order[len(done)]
        sender, receiver = (self.b, self.a) if reverse else (self.a, self.b)
        done.add((n, reverse))
        bps = _positive(data.get("bits_per_second"))
        rtt_us = _positive(data.get("rtt_us"))
        m = Measurement(sender.name, receiver.name, n, "saf", bits_per_second=bps,
                        seconds=_positive(data.get("seconds")), rtt_ms=rtt,
                        loaded_rtt_ms=None if rtt_us is None else rtt_us / 1000,
                        retransmits=_count(data.get("retransmits")), pmtu=_count(data.get("pmtu")),
                        segments=_count(data.get("segments")),
                        spurious=_count(data.get("spurious")),
                        sender_cpu_s=_positive(data.get("sender_cpu_s")),
                        receiver_cpu_s=_positive(data.get("receiver_cpu_s")))
        if bps is None or data.get("streams") != n:
            m.error = "the tester sent a result saf cannot read"
        self._record(m)

    async def _iperf3(self, done: set[tuple[int, bool]]) -> None:
        server = port = None
        problem = ""
        for _ in range(3):  # a port someone else took: try another
            port = random.randrange(20000, 60000)
            # --forceflush: its "Server listening" line must not wait in a pipe's buffer.
            server = await self.cb.start(
                f"exec iperf3 -s -B {quote(self.b.host)} -p {port} --forceflush", stdin=False)
            line = ""
            with contextlib.suppress(TimeoutError):
                while True:
                    line = await within(server.readline(), START_TIMEOUT)
                    if not line or "listening" in line.lower():
                        break
            if line and "listening" in line.lower():
                break
            problem = (await _stderr(server)) or line.strip() or "iperf3 -s did not start"
            await server.stop()
            server = None
        if server is None:
            raise OSError(f"iperf3 on {self.b.name}: {problem}")
        # iperf3 takes whole seconds (-t 0 would mean forever): rounded up.
        duration, warmup = math.ceil(self.opts.duration), math.ceil(self.opts.warmup)
        try:
            for n, reverse in self.opts.tests():
                command = (f"iperf3 -c {quote(self.b.host)} -p {port} -t {duration} "
                           f"-O {warmup} -P {n} -J" + (" -R" if reverse else ""))
                limit = warmup + duration + SLACK
                result = await self.ca.run(command, timeout=limit)
                sender, receiver = (self.b, self.a) if reverse else (self.a, self.b)
                done.add((n, reverse))
                m = Measurement(sender.name, receiver.name, n, "iperf3")
                try:
                    fig = iperf3.parse(result.stdout)
                except iperf3.Iperf3Error as exc:
                    m.error = "timed out" if result.timed_out else str(exc)
                else:
                    iperf3.fill(m, fig, reverse=reverse)
                self._record(m)
        finally:
            await server.stop()


async def _stderr(process: RemoteProcess) -> str:
    with contextlib.suppress(Exception):
        await within(process.wait(), 2)
        return (await process.stderr_text()).strip().splitlines()[-1:][0]
    return ""


def _positive(value: object) -> float | None:
    """A figure from a node: a finite number >= 0, else None (untrusted input)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if value >= 0 and value == value and value != float("inf") else None


def _count(value: object) -> int | None:
    v = _positive(value)
    return None if v is None or v != int(v) else int(v)


class _Engine:
    def __init__(self, fleet: Fleet, nodes: list[Node], options: NetOptions, result: NetResult,
                 say: Say, update: Update, bundle: AgentBundle) -> None:
        self.fleet = fleet
        self.nodes = {n.name: n for n in nodes}
        self.options = options
        self.result = result
        self.say = say
        self.update = update
        self.bundle = bundle

    def add(self, m: Measurement) -> None:
        self.result.measurements.append(m)
        self.say(describe(self.result, m))
        self.update(self.result)

    async def probe(self, node: Node) -> NodeLink:
        link = NodeLink(node.name, address=node.host)
        conn: Connector = self.fleet.connector(node)
        try:
            await deploy.ensure(conn, self.bundle)
            result = await conn.run(f"{_agent(node, self.bundle)} info --host {quote(node.host)}",
                                    timeout=30)
            data = json.loads(result.stdout.strip().splitlines()[-1]) if result.ok else None
        except ConnectError as exc:
            link.error = f"not reached ({exc.reason}: {exc.detail})"
            return link
        except (ValueError, IndexError, OSError):
            data = None
        if not isinstance(data, dict):
            link.error = "its agent could not describe its link"
            return link
        nic = data.get("nic")
        link.iperf3 = isinstance(data.get("iperf3"), str)
        if isinstance(nic, dict):
            link.interface = nic.get("name") if isinstance(nic.get("name"), str) else None
            link.mtu = _count(nic.get("mtu"))
            link.speed_mbps = _count(nic.get("speed_mbps")) or None
        return link

    async def run(self) -> NetResult:
        links = await asyncio.gather(*(self.probe(n) for n in self.nodes.values()))
        self.result.links = {link.node: link for link in links}
        self.update(self.result)
        plan = [[list(p) for p in r] for r in self.result.rounds]
        for number, pairs in enumerate(plan, 1):
            work = []
            for a_name, b_name in pairs:
                a, b = self.nodes[a_name], self.nodes[b_name]
                unreachable = [n for n in (a, b) if self.result.links[n.name].error]
                tool = self.options.tool
                if tool == "iperf3" and not (self.result.links[a.name].iperf3
                                             and self.result.links[b.name].iperf3):
                    missing = [n.name for n in (a, b) if not self.result.links[n.name].iperf3]
                    self.say(f"iperf3 is not installed on {', '.join(missing)}: "
                             f"{a.name} ↔ {b.name} measured by saf's tester")
                    tool = "saf"
                pair = _Pair(self, a, b, tool)
                if unreachable:
                    pair._fail_rest(set(), f"{unreachable[0].name}: "
                                           f"{self.result.links[unreachable[0].name].error}")
                    continue
                work.append(pair.run())
            if work:
                self.say(f"round {number} of {len(plan)}: "
                         + ", ".join(f"{a} ↔ {b}" for a, b in pairs))
                await asyncio.gather(*work)
        return self.result


def describe(result: NetResult, m: Measurement) -> str:
    """One line for a measurement, as the run's output shows it."""
    head = f"{m.sender} → {m.receiver}  {m.streams} stream{'s' * (m.streams > 1)}"
    if m.error:
        return f"{head}  failed: {m.error}"
    line = result.line_rate_mbps(m.sender, m.receiver)
    parts = [f"{fmt_gbps(m.bits_per_second)} Gbit/s"]
    if line:
        parts.append(f"{fmt_percent(result.fraction(m))} of {fmt_link(line)}")
    rtt = m.rtt_ms if m.rtt_ms is not None else m.loaded_rtt_ms
    parts.append(f"rtt {fmt_ms(rtt)}")
    if m.retransmits is not None:
        rate = m.retransmit_rate
        parts.append(f"{m.retransmits} retransmits" + (
            "" if rate is None else f" ({fmt_percent(rate, 2)} of segments)"))
    if m.pmtu:
        parts.append(f"pmtu {m.pmtu}")
    return f"{head}  " + ", ".join(parts)


def head_of(nodes: list[Node]) -> str | None:
    for n in nodes:
        if n.is_head:
            return n.name
    return nodes[0].name if nodes else None


def new_result(nodes: list[Node], options: NetOptions, *, run_id: str, cluster: str
               ) -> NetResult:
    names = [n.name for n in nodes]
    plan = schedule(names, options.pairs, head_of(nodes))
    return NetResult(run=run_id, cluster=cluster, nodes=names, pairs=options.pairs,
                     streams=options.streams, duration=options.duration,
                     warmup=options.warmup, tool=options.tool, started=time.time(),
                     rounds=[[list(p) for p in r] for r in plan.rounds])


def schedule_line(result: NetResult, options: NetOptions) -> str:
    pairs = sum(len(r) for r in result.rounds)
    tests = len(options.tests())
    counts = " and ".join(str(n) for n in sorted({1, options.streams}))
    seconds = len(result.rounds) * (tests * (options.warmup + options.duration) + 1.5) + 2
    return (f"speed test ({options.tool}): {pairs} pair{'s' * (pairs != 1)} in "
            f"{len(result.rounds)} round{'s' * (len(result.rounds) != 1)}, {tests} tests a pair "
            f"({counts} stream{'s' * (options.streams > 1)}, each way, {options.warmup:g} s "
            f"warm-up + {options.duration:g} s), about {seconds:.0f} s")


async def run_net_test(fleet: Fleet, nodes: list[Node], options: NetOptions, *, run_id: str,
                       say: Say = lambda line: None, update: Update = lambda result: None,
                       bundle: AgentBundle | None = None) -> NetResult:
    """Measure every scheduled pair of `nodes`; the result (also handed to `update` after
    every measurement). Raises UsageError for bad options or fewer than two nodes."""
    problem = options.problem()
    if problem:
        raise UsageError(problem)
    if len(nodes) < 2:
        raise UsageError("a speed test needs at least two nodes")
    result = new_result(nodes, options, run_id=run_id, cluster=fleet.inventory.cluster.name)
    say(schedule_line(result, options))
    update(result)
    agent = bundle if bundle is not None else await asyncio.to_thread(build)
    engine = _Engine(fleet, nodes, options, result, say, update, agent)
    try:
        await engine.run()
        result.status = "ok" if all(m.ok for m in result.measurements) and not any(
            link.error for link in result.links.values()) else "failed"
    except asyncio.CancelledError:
        result.status = "cancelled"
        raise
    finally:
        result.finished = time.time()
        update(result)
    return result
