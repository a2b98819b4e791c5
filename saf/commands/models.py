"""`saf models`: the model servers saf started on the cluster; check, stop, restart, logs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from saf import defaults
from saf.commands import common
from saf.errors import SafError

if TYPE_CHECKING:
    from saf.cluster.capacity import NodeMemory
    from saf.fleet import Fleet
    from saf.inference import cluster as model_servers
    from saf.inference.measure import CheckReport
    from saf.inference.node import Started
    from saf.inference.records import Endpoint


async def _listed(fleet: Fleet, selector: str, probe: bool = True
                  ) -> model_servers.ClusterServers:
    from saf.inference import cluster as model_servers

    return await model_servers.list_endpoints(fleet, await fleet.select(selector), probe=probe)


async def _one(fleet: Fleet, which: str) -> Endpoint:
    from saf.inference import cluster as model_servers

    found = await _listed(fleet, "all", probe=False)
    return model_servers.find(found.endpoints, which)


@click.group("models", invoke_without_command=True)
@click.option("--on", "selector", default="all", show_default=True, metavar="SEL",
              help="Which nodes to look on (see `saf exec --help`).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per endpoint.")
@click.pass_context
def models(ctx: click.Context, selector: str, as_json: bool) -> None:
    """Every model server saf started in the cluster (`saf run models`): node, port, engine,
    model, state (ready, loading, starting, exited), pid, uptime, and its last check's mean
    TTFT and tokens/s. Servers are found again from their records on the nodes
    (~/.saf/serve/PORT.json), whichever saf started them.

    Exits 1 when a node cannot be reached.
    """
    if ctx.invoked_subcommand is not None:
        return

    import msgspec

    from saf.fleet import Fleet
    from saf.inference import checks as saved_checks

    inventory = common.inventory(ctx)

    async def go() -> model_servers.ClusterServers:
        async with Fleet(inventory) as fleet:
            return await _listed(fleet, selector)

    found = common.run(go())
    # Rich, only once there is something to print: not part of the wait for the first answer.
    from saf.render.console import console, print_json_line
    from saf.render.models_view import endpoints_renderable

    last = saved_checks.load(inventory.cluster.name)
    if as_json:
        for e in found.endpoints:
            check = last.get(e.key)
            print_json_line({**e.to_json(),
                             "last_check": msgspec.to_builtins(check) if check else None})
        for node, why in found.unreachable.items():
            print_json_line({"node": node, "state": "unreachable", "why": why})
    else:
        out = console()
        out.print(endpoints_renderable(found.endpoints, found.unreachable, last, time.time(),
                                       out.width))
        if found.bad:
            out.print(f"bad answers from nodes: {dict(found.bad)}", style="yellow")
    if found.unreachable:
        ctx.exit(1)


@models.command("check")
@click.argument("endpoint", required=False)
@click.option("--requests", "-n", default=1, show_default=True,
              type=click.IntRange(1, 100_000), help="How many requests to send.")
@click.option("--concurrency", "-c", default=1, show_default=True,
              type=click.IntRange(1, 1024), help="How many at once.")
@click.option("--max-tokens", default=32, show_default=True, type=click.IntRange(2, 100_000),
              help="Tokens to generate per request.")
@click.option("--timeout", default=defaults.MODEL_CHECK_DEADLINE, show_default=True,
              type=click.FloatRange(0.1, 86_400),
              help="Seconds for the whole check of an endpoint; requests unanswered by then fail.")
@click.option("--json", "as_json", is_flag=True, help="The report as one JSON object.")
@click.pass_context
def check(ctx: click.Context, endpoint: str | None, requests: int, concurrency: int,
          max_tokens: int, timeout: float, as_json: bool) -> None:
    """Measure an endpoint (NODE:PORT, NODE or PORT; default: every ready one) through an
    SSH forward: GET /v1/models, then a fixed prompt streamed REQUESTS times, CONCURRENCY at
    once. Reports ttft, tpot, itl and e2el (mean, p50, p90, p99, as `vllm bench serve`
    names them), output tokens/s, and the engine's own timings beside saf's where it gives
    them (llama-server's `timings`, llama.cpp's log). Exits 1 when a request failed."""
    from saf.fleet import Fleet
    from saf.inference import cluster as model_servers

    inventory = common.inventory(ctx)

    async def go() -> list[CheckReport]:
        async with Fleet(inventory) as fleet:
            listed = await _listed(fleet, "all")
            from saf.http_read import httpx  # once the nodes have answered: not before

            if endpoint:
                chosen = [model_servers.find(listed.endpoints, endpoint)]
            else:
                chosen = [e for e in listed.endpoints if e.state == "ready"]
                if not chosen:
                    raise SafError("no ready endpoint to check (see `saf models`)")
            reports = []
            for e in chosen:
                try:
                    reports.append(await model_servers.check(
                        fleet, e, requests=requests, concurrency=concurrency,
                        max_tokens=max_tokens, save_for=inventory.cluster.name,
                        timeout=timeout))
                except httpx.HTTPError as exc:
                    raise SafError(f"{e.key}: {exc}") from None
            return reports

    reports = common.run(go())
    # Rich, only once there is something to print: not part of the wait for the first answer.
    from saf.render.console import console, print_json_line
    from saf.render.models_view import check_renderable

    out = console()
    for report in reports:
        if as_json:
            print_json_line(report.to_json())
        else:
            out.print(check_renderable(report))
    if any(r.failed for r in reports):
        ctx.exit(1)


@models.command("stop")
@click.argument("endpoint")
@click.pass_context
def stop(ctx: click.Context, endpoint: str) -> None:
    """Stop a server saf started (TERM to its process group, KILL after 10 s) and forget it."""
    from saf.cluster.service import keeper_kind, remove_service
    from saf.fleet import Fleet
    from saf.inference import cluster as model_servers
    from saf.render.console import console

    inventory = common.inventory(ctx)

    async def go() -> tuple[Endpoint, Endpoint | None]:
        async with Fleet(inventory) as fleet:
            chosen = await _one(fleet, endpoint)
            if chosen.kept:
                # Its keeper first (the init system, saf's supervisor), or it starts it again.
                conn = fleet.connector(chosen.node)
                failed = await remove_service(conn.run, chosen.kept, conn.node.python,
                                              keeper_kind(chosen.keeper))
                if failed:
                    raise SafError(f"{chosen.key}: removing saf-{chosen.kept} failed: "
                                   f"{failed[0][:200]}")
            return chosen, await model_servers.stop(fleet, chosen)

    chosen, was = common.run(go())
    console().print(f"{chosen.key}: stopped {chosen.engine} ({chosen.model})" if was
                    else f"{chosen.key}: nothing was running")


@models.command("restart")
@click.argument("endpoint")
@click.option("--timeout", default=600.0, show_default=True, type=click.FloatRange(1, 604800),
              help="Seconds to wait for it to be ready again.")
@click.pass_context
def restart(ctx: click.Context, endpoint: str, timeout: float) -> None:
    """Stop a server and start it again with the same command line (one kept as a service:
    restart the service); wait until it is ready (or fail with its log's last lines)."""
    from saf.fleet import Fleet
    from saf.inference import cluster as model_servers
    from saf.render.console import console
    from saf.up.kept_models import KeptModels

    inventory = common.inventory(ctx)

    async def go() -> Started:
        async with Fleet(inventory) as fleet:
            chosen = await _one(fleet, endpoint)
            if chosen.kept:  # through its service: its keeper would start it again
                return await KeptModels(inventory, fleet).restart(chosen, timeout)
            return await model_servers.restart(fleet, chosen, timeout=timeout)

    started = common.run(go())
    out = console()
    if started.status == "failed":
        out.print(f"{endpoint}: {started.why}", style="red")
        for line in started.tail:
            out.print("  " + line, markup=False, highlight=False)
        ctx.exit(1)
    assert started.endpoint is not None
    out.print(f"{started.endpoint.key}: {started.endpoint.engine} ready again "
              f"(pid {started.endpoint.pid})")


@models.command("logs")
@click.argument("endpoint")
@click.option("--lines", "-n", default=50, show_default=True, type=click.IntRange(1, 100_000),
              help="How many of the last lines.")
@click.pass_context
def logs(ctx: click.Context, endpoint: str, lines: int) -> None:
    """The last lines of a server's log (on the node: ~/.saf/serve/PORT.log)."""
    from saf.fleet import Fleet
    from saf.inference import cluster as model_servers
    from saf.render.console import console

    inventory = common.inventory(ctx)

    async def go() -> tuple[str, list[str]]:
        async with Fleet(inventory) as fleet:
            return await model_servers.logs(fleet, await _one(fleet, endpoint), lines)

    path, text = common.run(go())
    out = console()
    out.print(f"# {endpoint}: {path}", style="dim", markup=False, highlight=False)
    for line in text:
        out.print(line, markup=False, highlight=False, soft_wrap=True)


READING_GRACE = 20.0  # seconds beyond the connect timeout to wait for every node's first sample


async def _memory(fleet: Fleet, selector: str) -> list[NodeMemory]:
    """Each chosen node's memory from one sample of its agent (a node that gives none in time
    has no reading, and nothing fits there): what `saf up` reads to place models."""
    from saf.up.place import memory

    return await memory(fleet, await fleet.select(selector), grace=READING_GRACE)


def _recorded_memory(file: Path, selector: str) -> list[NodeMemory]:
    """Each selected node's memory as its last sample in a recording left it."""
    from saf.cluster.capacity import nodes_memory
    from saf.inventory.model import Cluster, Defaults, Inventory
    from saf.metrics.store import MetricsStore
    from saf.recording import load_recording
    from saf.select import select

    recording = load_recording(file)
    nodes = select(Inventory(cluster=Cluster(recording.cluster), defaults=Defaults(),
                             nodes=recording.nodes, path=file), selector)
    store = MetricsStore()
    for event in recording.events:
        store.apply(event)
    for node in nodes:
        store.add_node(node.name)
    return nodes_memory(store, [n.name for n in nodes], recording.end)


@models.command("fit")
@click.argument("model")
@click.option("--ctx", "ctx_size", type=click.IntRange(1, 1 << 31), default=None, metavar="N",
              help="The context size it will be served with (default: 4096, or the "
                   "model's own if smaller).")
@click.option("--on", "selector", default="all", show_default=True, metavar="SEL",
              help="Which nodes to consider (see `saf exec --help`).")
@click.option("--headroom", default=None, metavar="X",
              help="Kept back on every node: a share of its memory (10%), an amount (2GiB), "
                   "or both (10%,1GiB: whichever is more).  [default: 10%,1GiB]")
@click.option("--recording", type=click.Path(dir_okay=False, path_type=Path), default=None,
              metavar="FILE", help="Read each node's memory from its last sample in a "
                                   "recording (`saf record`) instead of asking the nodes.")
@click.option("--json", "as_json", is_flag=True,
              help="The estimate, then one JSON object per node.")
@click.pass_context
def fit(ctx: click.Context, model: str, ctx_size: int | None, selector: str,
        headroom: str | None, recording: Path | None, as_json: bool) -> None:
    """Where MODEL (a GGUF file, a safetensors folder, or an HF id in the local Hugging Face
    cache, on this machine) would fit: what it needs (weights, KV cache at the context, a
    compute allowance) against each node's free GPU memory (unified memory on a Mac, RAM
    without a GPU) from its agent, less the headroom. Exits 0 when it fits on some node, 1
    when on none. See docs/placement.md."""
    from saf.cluster.capacity import Headroom, parse_headroom
    from saf.cluster.placement import fit_rows, rows_text
    from saf.fleet import Fleet
    from saf.format import fmt_bytes
    from saf.inference.estimate import estimate
    from saf.render.console import console, print_json_line

    kept = parse_headroom(headroom) if headroom else Headroom()
    needs = estimate(model, ctx=ctx_size)
    if recording is not None:
        memory = _recorded_memory(recording, selector)
    else:
        inventory = common.inventory(ctx)

        async def go() -> list[NodeMemory]:
            async with Fleet(inventory) as fleet:
                return await _memory(fleet, selector)

        memory = common.run(go())
    rows = fit_rows(memory, needs.total, kept)
    if as_json:
        print_json_line({"model": needs.to_json(), "headroom": str(kept)})
        for row in rows:
            print_json_line({"node": row.node, "memory": row.kind, "free": row.free,
                             "headroom": row.headroom, "available": row.available,
                             "needed": row.needed, "fits": row.fits, "why": row.why})
    else:
        out = console()
        out.print(f"{model}: {needs.format}, {needs.layers} layers, context {needs.ctx}: "
                  f"needs {fmt_bytes(needs.total)} (weights {fmt_bytes(needs.weights)}, "
                  f"KV cache {fmt_bytes(needs.kv_cache)}, compute {fmt_bytes(needs.compute)}); "
                  f"headroom {kept}", markup=False, highlight=False)
        out.print(rows_text(rows), markup=False, highlight=False, soft_wrap=True)
    if not any(r.fits for r in rows):
        ctx.exit(1)
