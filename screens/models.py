"""The Models screen: every model server saf started in the cluster, its live state, and the
figures of its last check; check, stop, restart and read the log of the highlighted one.

The data comes from a `ModelsSource` (saf.inference.source): the context's when it gives one
(the snapshot tests), else the live one on the context's fleet or inventory
(saf.up.kept_models: a server kept as service model-NAME is stopped and restarted through its
service, which would otherwise start it again). The list is
fetched again every 10 s and after each action; checks and actions run as workers, so the
screen never waits on the network.
"""

from __future__ import annotations

from collections.abc import Mapping

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from saf.screens.base import SafScreen
from saf.screens.confirm import ConfirmScreen
from saf.screens.footer import FittingFooter
from saf.screens.widgets import StatusLine, palette
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Static

from saf.format import MISSING, fmt_ms, fmt_num, fmt_uptime
from saf.inference.checks import SavedCheck
from saf.inference.cluster import ClusterServers
from saf.inference.records import Endpoint
from saf.inference.source import FleetModels, ModelsSource
from saf.render.columns import fitted_table, left_out_words
from saf.render.models_view import COLUMNS, endpoint_rows
from saf.up.kept_models import KeptModels, declared_here

REFRESH_S = 10.0
LOG_LINES = 12


class ModelsScreen(SafScreen[None]):
    BINDING_GROUP_TITLE = "Models"
    BINDINGS = [
        Binding("escape", "back", "Back", id="models.back",
                tooltip="Go back to the previous screen"),
        Binding("up,k", "move(-1)", "Up", id="models.up", show=False,
                tooltip="Highlight the endpoint above"),
        Binding("down,j", "move(1)", "Down", id="models.down", show=False,
                tooltip="Highlight the endpoint below"),
        Binding("c", "check", "Check", id="models.check",
                tooltip="Measure the highlighted endpoint: 4 streamed requests, 2 at once"),
        Binding("l", "logs", "Log", id="models.logs",
                tooltip="Show the last lines of the highlighted server's log"),
        Binding("s", "stop", "Stop", id="models.stop",
                tooltip="Stop the highlighted server, or the service that keeps it (asks)"),
        Binding("r", "restart", "Restart", id="models.restart",
                tooltip="Restart the highlighted server, or the service that keeps it (asks)"),
        Binding("u", "refresh", "Refresh", id="models.refresh",
                tooltip="Look at every node's servers again now"),
    ]

    DEFAULT_CSS = """
    ModelsScreen #models-table-box {
        height: auto;
        max-height: 50%;
    }
    ModelsScreen #models-detail-box {
        height: 1fr;
    }
    """

    def __init__(self) -> None:
        super().__init__()
        self.source: ModelsSource | None = None
        self.servers: ClusterServers | None = None
        self.checks: Mapping[str, SavedCheck] = {}
        self.selected = 0
        self.busy = ""  # what is running now (a check, a stop...), for the header
        self.problem = ""
        self.shown_log: tuple[str, list[str]] | None = None  # (endpoint key, lines) shown

    def compose(self) -> ComposeResult:
        yield Static(id="models-header", classes="screen-header")
        box = Vertical(Static(id="models-table"), id="models-table-box", classes="panel")
        box.border_title = "Endpoints"
        yield box
        detail = VerticalScroll(Static(id="models-detail"), id="models-detail-box",
                                classes="panel")
        detail.border_title = "Last check"
        yield detail
        yield StatusLine()
        yield FittingFooter()

    def on_mount(self) -> None:
        setup = self.setup
        if setup.models is not None:
            self.source = setup.models
        elif setup.inventory is not None:
            self.source = KeptModels(setup.inventory, setup.fleet)
        else:
            self.problem = "no cluster to look at (a replay without an inventory)"
        self.redraw()
        self.refresh_list()
        self.set_interval(REFRESH_S, self.refresh_list, name="models-refresh")

    async def on_unmount(self) -> None:
        if isinstance(self.source, FleetModels):
            await self.source.close()

    def on_resize(self) -> None:
        self.call_after_refresh(self.redraw)

    # -- data -------------------------------------------------------------------------------
    @work(exclusive=True, group="models-list", exit_on_error=False)
    async def refresh_list(self) -> None:
        if self.source is None:
            return
        try:
            self.servers = await self.source.endpoints()
            self.checks = self.source.last_checks()
            self.problem = ""
        except Exception as exc:  # noqa: BLE001 - shown in the header; the screen stays up
            self.problem = str(exc) or type(exc).__name__
        self.redraw()

    @property
    def endpoints(self) -> list[Endpoint]:
        return self.servers.endpoints if self.servers else []

    def current(self) -> Endpoint | None:
        endpoints = self.endpoints
        if not endpoints:
            return None
        self.selected = min(max(self.selected, 0), len(endpoints) - 1)
        return endpoints[self.selected]

    # -- actions ----------------------------------------------------------------------------
    def action_back(self) -> None:
        self.cockpit.go_back()

    def action_move(self, step: int) -> None:
        self.selected += step
        self.shown_log = None
        self.redraw()

    def action_refresh(self) -> None:
        self.refresh_list()

    def action_check(self) -> None:
        endpoint = self.current()
        if endpoint is None or self.source is None:
            return
        self._check(endpoint)

    @work(exclusive=True, group="models-action", exit_on_error=False)
    async def _check(self, endpoint: Endpoint) -> None:
        assert self.source is not None
        self.busy = f"checking {endpoint.key}…"
        self.redraw()
        try:
            report = await self.source.check(endpoint)
            self.notify(f"{endpoint.key}: {len(report.completed)}/{report.requests} requests, "
                        f"{fmt_num(report.tokens_per_s, ' tok/s', 1)}", title="Checked")
        except Exception as exc:  # noqa: BLE001 - any failure is the user's news, not a crash
            self.notify(f"{endpoint.key}: {exc}", title="Check failed", severity="error")
        self.busy = ""
        self.checks = self.source.last_checks()
        self.redraw()

    def action_logs(self) -> None:
        endpoint = self.current()
        if endpoint is not None and self.source is not None:
            self._logs(endpoint)

    @work(exclusive=True, group="models-action", exit_on_error=False)
    async def _logs(self, endpoint: Endpoint) -> None:
        assert self.source is not None
        try:
            path, lines = await self.source.logs(endpoint, LOG_LINES)
            self.shown_log = (endpoint.key, [f"# {path}", *lines])
        except Exception as exc:  # noqa: BLE001 - shown
            self.notify(f"{endpoint.key}: {exc}", title="No log", severity="error")
        self.redraw()

    def action_stop(self) -> None:
        self._ask("stop")

    def action_restart(self) -> None:
        self._ask("restart")

    def _ask(self, what: str) -> None:
        endpoint = self.current()
        if endpoint is None or self.source is None:
            return
        if self.cockpit.refuse_if_readonly(f"{what.capitalize()} a model server"):
            return
        command = f"saf models {what} {endpoint.key}"
        body = (f"{what.capitalize()} {endpoint.engine} serving {endpoint.model} on "
                f"{endpoint.key} (pid {endpoint.pid})?")
        if endpoint.kept:
            # Signalled, its keeper would start it again: the service is what is acted on.
            body = (f"{what.capitalize()} service saf-{endpoint.kept}, which keeps "
                    f"{endpoint.engine} serving {endpoint.model} on {endpoint.key}?")
            if what == "stop":
                command = f"stop saf-{endpoint.kept} on {endpoint.node}, left installed"

        def answered(choice: str | None) -> None:
            if choice == what:
                self._act(endpoint, what)

        self.app.push_screen(ConfirmScreen(f"{what.capitalize()} a model server", body, command,
                                           [(what, what.capitalize(), "error")], danger=True),
                             answered)

    @work(exclusive=True, group="models-action", exit_on_error=False)
    async def _act(self, endpoint: Endpoint, what: str) -> None:
        assert self.source is not None
        self.busy = f"{'restarting' if what == 'restart' else 'stopping'} {endpoint.key}…"
        self.redraw()
        try:
            if what == "stop":
                await self.source.stop(endpoint)
                self.notify(self._stopped(endpoint), title="Stopped")
            else:
                started = await self.source.restart(endpoint)
                if started.status == "failed":
                    self.shown_log = (endpoint.key, [started.why, *started.tail])
                    self.notify(f"{endpoint.key}: {started.why}", title="Restart failed",
                                severity="error")
                else:
                    self.notify(f"{endpoint.key} ready again", title="Restarted")
        except Exception as exc:  # noqa: BLE001 - shown
            self.notify(f"{endpoint.key}: {exc}", title=f"{what.capitalize()} failed",
                        severity="error")
        self.busy = ""
        self.refresh_list()

    def _stopped(self, endpoint: Endpoint) -> str:
        if not endpoint.kept:
            return f"{endpoint.key} stopped"
        said = f"{endpoint.key}: service saf-{endpoint.kept} stopped"
        inventory = self.setup.inventory
        if inventory is not None and declared_here(inventory, endpoint):
            return said + "; saf.toml declares it, so the next `saf up` starts it again"
        return said + " (left installed: `saf models stop` removes it)"

    # -- drawing ----------------------------------------------------------------------------
    def redraw(self) -> None:
        if not self.is_mounted:
            return
        v = palette(self.app)
        self.query_one("#models-header", Static).update(self._header(v))
        box = self.query_one("#models-table-box")
        table = self.query_one("#models-table", Static)
        endpoints = self.endpoints
        if self.servers is None:
            table.update(Text("looking at the nodes…" if self.source else MISSING,
                              style=v.get("text-muted", v["foreground"])))
        elif not endpoints:
            table.update(Text("No model servers started by saf. Start one with the models "
                              "recipe (4, or `saf run models --var model=...`).",
                              style=v.get("text-muted", v["foreground"])))
        else:
            current = self.current()
            width = box.content_size.width or self.app.size.width - 4
            rows = endpoint_rows(endpoints, self.checks, self.source.now() if self.source
                                 else 0.0, width)
            rendered, left_out = fitted_table(COLUMNS, rows, width, header_style="bold",
                                              expand=False)
            for index, endpoint in enumerate(endpoints):
                if endpoint is current:
                    rendered.rows[index].style = f"reverse {v['accent']}"
            table.update(rendered)
            box.border_title = "Endpoints" + (f" · {left_out_words(left_out)}"
                                              if left_out else "")
        detail_box = self.query_one("#models-detail-box")
        current = self.current()
        if self.shown_log is not None and current is not None and self.shown_log[0] == current.key:
            detail_box.border_title = f"Log · {current.key}"
            self.query_one("#models-detail", Static).update(
                Text("\n".join(self.shown_log[1]), no_wrap=True, overflow="ellipsis"))
        else:
            detail_box.border_title = f"Last check · {current.key}" if current else "Last check"
            self.query_one("#models-detail", Static).update(self._detail(current, v))

    def _header(self, v: dict[str, str]) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(" Models ", style=f"bold {v['primary']}")
        endpoints = self.endpoints
        ready = sum(1 for e in endpoints if e.state == "ready")
        text.append(f" {len(endpoints)} endpoints · {ready} ready")
        if self.servers and self.servers.unreachable:
            text.append(f" · not reached: {', '.join(sorted(self.servers.unreachable))}",
                        style=v["error"])
        if self.busy:
            text.append(f" · {self.busy}", style=v["accent"])
        if self.problem:
            text.append(f" · {self.problem}", style=v["error"])
        return text

    def _no_check(self, v: dict[str, str]) -> Text:
        """With no endpoint to show: what the panel will show, and how to get it."""
        muted = v.get("text-muted", v["foreground"])
        text = Text("The highlighted endpoint's last check shows here: time to first token, "
                    "time per output token, between tokens and end to end (mean, p50, p90, "
                    "p99), and tokens per second.\n", style=muted)
        started = self.servers is None or bool(self.endpoints)
        text.append("Highlight an endpoint and press " if started
                    else "Once a server runs (see above), highlight it and press ", style=muted)
        text.append("c", style="bold")
        text.append(" to check it (or run `saf models check NODE:PORT`).", style=muted)
        return text

    def _detail(self, endpoint: Endpoint | None, v: dict[str, str]) -> RenderableType:
        if endpoint is None:
            return self._no_check(v)
        check = self.checks.get(endpoint.key)
        facts = Text.assemble(
            (f"{endpoint.engine}", "bold"), f"  {endpoint.model}\n",
            f"pid {endpoint.pid if endpoint.up else MISSING} · up "
            f"{fmt_uptime(endpoint.uptime) if endpoint.up else MISSING} · log {endpoint.log}")
        if not endpoint.up and endpoint.state_why:  # what the table's STATE cell leaves out
            facts.append(f"\n{endpoint.state_text}: {endpoint.state_why}",
                         style=v["error"])
        if not check:
            return Group(facts, Text("Not checked yet: press c to measure it.",
                                     style=v.get("text-muted", v["foreground"])))
        table = Table(box=None, header_style="bold", pad_edge=False)
        for title in ("METRIC (ms)", "MEAN", "P50", "P90", "P99"):
            table.add_column(title, justify="left" if title.startswith("METRIC") else "right")
        for name in ("ttft", "tpot", "itl", "e2el"):
            stats = check.stats(name)
            if stats is not None:
                table.add_row(name, *(fmt_ms(x) for x in (stats.mean, stats.p50, stats.p90,
                                                          stats.p99)))
            else:
                table.add_row(name, MISSING, MISSING, MISSING, MISSING)
        engine = check.engine
        at = check.at
        ago = fmt_uptime(self.source.now() - at) if self.source and at else MISSING
        summary = Text(
            f"{_int(check.completed)}/{_int(check.requests)} requests, "
            f"concurrency {_int(check.concurrency)}: "
            f"{fmt_num(check.tokens_per_s, ' tok/s', 1)}, "
            f"{ago} ago")
        parts: list[RenderableType] = [facts, summary, table]
        if engine:
            parts.append(Text(
                f"engine's own ({check.engine_source or '?'}): prompt "
                f"{fmt_ms(engine.get('prompt_ms'))}, per token "
                f"{fmt_ms(engine.get('predicted_per_token_ms'))}, "
                f"{fmt_num(engine.get('predicted_per_second'), ' tok/s', 1)}",
                style=v.get("text-muted", v["foreground"])))
        if check.bad:
            parts.append(Text("bad answers: " + ", ".join(f"{k} {n}"
                                                          for k, n in check.bad.items()),
                              style=v["warning"]))
        return Group(*parts)


def _int(value: int | None) -> str:
    return str(value) if value is not None else MISSING
