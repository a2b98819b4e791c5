"""`saf models` as tables: the cluster's endpoints, and a check's figures beside the engine's
own. The endpoint rows are shared with the cockpit's Models screen."""

from __future__ import annotations

from collections.abc import Mapping

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from saf.format import MISSING, fmt_ms, fmt_num, fmt_uptime
from saf.inference.checks import SavedCheck
from saf.inference.measure import CheckReport
from saf.inference.records import Endpoint
from saf.render.columns import Column, fitted_table

STATE_STYLES = {"ready": "green", "loading": "yellow", "starting": "yellow",
                "running": "green", "exited": "red", "bad": "red", "unreachable": "red"}

# Narrow screens keep the endpoint, its state and model longest.
COLUMNS = (Column("NODE", "left"), Column("PORT"), Column("ENGINE", "left", priority=2),
           Column("MODEL", "left", priority=1), Column("STATE", "left"),
           Column("PID", priority=4), Column("UPTIME", priority=3),
           Column("TTFT", priority=2), Column("TOK/S", priority=2),
           Column("CHECKED", "left", priority=5))




def _short_model(model: str, limit: int = 40) -> str:
    if len(model) <= limit:
        return model
    return "…" + model[-(limit - 1):]


def endpoint_rows(endpoints: list[Endpoint], checks: Mapping[str, SavedCheck],
                  now: float, width: int | None = None) -> list[list[Text]]:
    """One row per endpoint (COLUMNS), with its last check's mean TTFT and tokens/s. A model
    name longer than a quarter of `width` keeps its end (the part that tells models apart)."""
    limit = 40 if width is None else max(16, min(40, width // 4))
    rows = []
    for e in endpoints:
        check = checks.get(e.key)
        at = check.at if check else None
        ttft = check.stats("ttft") if check else None
        ago = fmt_uptime(now - at) + " ago" if at is not None else MISSING
        rows.append([Text(e.node), Text(str(e.port)), Text(e.engine),
                     Text(_short_model(e.model, limit)),
                     Text(e.state_text, style=STATE_STYLES.get(e.state, "")),
                     Text(str(e.pid) if e.pid and e.up else MISSING),
                     Text(fmt_uptime(e.uptime) if e.up else MISSING),
                     Text(fmt_ms(ttft.mean if ttft else None)),
                     Text(fmt_num(check.tokens_per_s if check else None, digits=1)),
                     Text(ago)])
    return rows


def endpoints_renderable(endpoints: list[Endpoint], unreachable: Mapping[str, str],
                         checks: Mapping[str, SavedCheck], now: float,
                         width: int | None) -> RenderableType:
    if not endpoints and not unreachable:
        return Text("No model servers started by saf on these nodes. Start one with "
                    "`saf run models --var model=...`.")
    table, _ = fitted_table(COLUMNS, endpoint_rows(endpoints, checks, now, width), width,
                            header_style="bold")
    parts: list[RenderableType] = [table]
    for node, why in unreachable.items():
        parts.append(Text(f"{node}: not reached ({why})", style="red"))
    for e in endpoints:
        if e.state == "bad":
            parts.append(Text(f"{e.key}: its record is not valid ({e.why})", style="red"))
        elif e.state == "exited" and not e.kept:
            parts.append(Text(f"{e.key}: {e.state_why}", style="red"))
    return Group(*parts)


def check_renderable(report: CheckReport) -> RenderableType:
    """A check: what was sent, the four latencies with percentiles (ms), throughput, and the
    engine's own timings beside saf's."""
    head = Text.assemble(
        (report.endpoint, "bold"), f"  {report.model}\n",
        f"{report.requests} request(s), concurrency {report.concurrency}, "
        f"{report.max_tokens} tokens each: {len(report.completed)} completed, "
        f"{report.failed} failed in {report.duration:.2f} s\n",
        f"output {report.output_tokens} tokens, "
        f"{fmt_num(report.tokens_per_s, ' tok/s', 1)}, "
        f"{fmt_num(report.requests_per_s, ' req/s', 2)}")
    table = Table(box=None, header_style="bold", pad_edge=False)
    for title in ("METRIC (ms)", "MEAN", "P50", "P90", "P99", "N"):
        table.add_column(title, justify="left" if title.startswith("METRIC") else "right")
    for name, stats in report.stats().items():
        if stats is None:
            table.add_row(name, MISSING, MISSING, MISSING, MISSING, "0")
        else:
            table.add_row(name, fmt_ms(stats.mean), fmt_ms(stats.p50), fmt_ms(stats.p90),
                          fmt_ms(stats.p99), str(stats.n))
    parts: list[RenderableType] = [head, table]
    parts.append(_engine_table(report))
    if report.bad.total:
        parts.append(Text("bad answers: " + ", ".join(
            f"{reason} {count}" for reason, count in sorted(report.bad.counts.items())),
            style="yellow"))
    for error in report.errors():
        parts.append(Text(f"failed: {error}", style="red"))
    return Group(*parts)


def _engine_table(report: CheckReport) -> RenderableType:
    stats = report.stats()
    engine = report.engine or {}
    ttft = stats["ttft"].mean if stats["ttft"] else None
    tpot = stats["tpot"].mean if stats["tpot"] else None
    table = Table(box=None, header_style="bold", pad_edge=False,
                  title_justify="left", title_style="bold",
                  title=("saf vs the engine's own (" + report.engine_source + ")"
                         if report.engine else "the engine reported no timings of its own"))
    table.add_column("FIGURE")
    table.add_column("SAF", justify="right")
    table.add_column("ENGINE", justify="right")
    table.add_row("ttft / prompt (ms)", fmt_ms(ttft), fmt_ms(engine.get("prompt_ms")))
    table.add_row("tpot (ms)", fmt_ms(tpot), fmt_ms(engine.get("predicted_per_token_ms")))
    table.add_row("decode tok/s", fmt_num(1000 / tpot if tpot else None, digits=1),
                  fmt_num(engine.get("predicted_per_second"), digits=1))
    return table
