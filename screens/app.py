"""The cockpit app and its factory.

`make_app(setup, source_factory)` builds the App without running it: `setup` is the
`CockpitContext` the front door built (inventory, fleet, actions, settings, ...), and
`source_factory` is called with the app's event callback and returns a metrics source (a live
`NodeLinks`, or a `Replayer` of a recording), so tests and snapshots build the very same app
on replayed frames.

Data flow: the source applies each event to its `MetricsStore`, then calls the app's callback,
which only notes the node. Once a second, with the clock's tick, the screen on view gets one
typed message naming every node noted since (saf.screens.messages `NodesChanged`, then
`Tick`): a node is named once however many samples arrived, the store has the newest, and 64
nodes at 1 Hz are one message a second, not 64. A change a person must see at once (a node
connected or lost, its first sample) is handed on within `GATHER` instead. The other screens
redraw from the store when they come back into view.

The top-level screens (dashboard, signals, recipes) are Textual screen modes: each keeps its
state while another is on view. A node's screen is pushed onto the dashboard's.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, ClassVar, Protocol

from saf.screens.messages import NodesChanged, ReplayMoved, Tick
from saf.screens.registry import HOME, SCREENS, entry
from saf.screens.theming import DEFAULT_DARK, load_themes, theme_cycle, theme_dirs
from saf.themes import STYLESHEET
from textual import work
from textual.app import App, ScreenStackError, SystemCommand, UnknownModeError
from textual.binding import Binding
from textual.driver import Driver
from textual.notifications import SeverityLevel
from textual.screen import ModalScreen, Screen
from textual.timer import Timer
from textual.widget import AwaitMount

from saf.cockpit.context import CockpitContext
from saf.cockpit.settings import remember_theme
from saf.events import Emit, Event
from saf.inventory.model import Node
from saf.metrics.store import MetricsStore
from saf.metrics.view import NodeView, node_view
from saf.recording import Recording, RecordingWriter, Replayer, ReplayPosition
from saf.signals.book import SignalBook
from saf.signals.feed import SignalFeed


class MetricsSource(Protocol):
    """What the cockpit reads from: a NodeLinks, a Replayer, or anything shaped so."""

    store: MetricsStore

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


SourceFactory = Callable[[Emit], MetricsSource]


def _screen_bindings() -> list[Binding]:
    return [Binding(e.key, f"app.open_screen('{e.name}')", e.title, id=f"screen.{e.name}",
                    tooltip=e.help, show=False)
            for e in SCREENS if e.key]


class SafApp(App[None]):
    TITLE = "saf"
    CSS_PATH = str(STYLESHEET)
    BINDING_GROUP_TITLE = "Cockpit"
    BINDINGS = [
        Binding("q", "quit", "Quit", id="app.quit",
                tooltip="Leave the cockpit; the agents on the nodes stop with it"),
        Binding("question_mark", "help", "Help", id="app.help",
                tooltip="What every key does here, and what the figures mean"),
        Binding("t", "next_theme", "Theme", id="app.theme",
                tooltip="Switch to the next theme (remembered for next time)"),
        Binding("R", "toggle_record", "Record", id="app.record",
                tooltip="Start or stop recording every node's frames to a file"),
        Binding("space", "replay_pause", "Pause", id="replay.pause",
                tooltip="Pause or resume the replay"),
        Binding("left", "replay_seek(-10)", "-10s", id="replay.back",
                tooltip="Go back 10 seconds in the recording", show=False),
        Binding("right", "replay_seek(10)", "+10s", id="replay.forward",
                tooltip="Go forward 10 seconds in the recording", show=False),
        Binding("less_than_sign", "replay_speed(0.5)", "Slower", id="replay.slower",
                tooltip="Replay at half the speed", show=False),
        Binding("greater_than_sign", "replay_speed(2)", "Faster", id="replay.faster",
                tooltip="Replay at twice the speed", show=False),
        *_screen_bindings(),
    ]

    # Each top-level screen is a mode, made when first opened and kept while others show.
    MODES: ClassVar[dict[str, str | Callable[[], Screen[None]]]] = {
        item.name: item.build for item in SCREENS if not item.needs_node}
    DEFAULT_MODE = HOME
    # Off while __init__ sets the starting theme: only a person's choice is remembered.
    _remember_theme = False

    def __init__(self, setup: CockpitContext, source_factory: SourceFactory) -> None:
        self.setup = setup
        super().__init__()
        self._node_info = {n.name: n for n in setup.nodes}
        self.source: MetricsSource = source_factory(self._on_event)
        self.store: MetricsStore = self.source.store
        for node in setup.nodes:
            self.store.add_node(node.name)
        self.replayer = self.source if isinstance(self.source, Replayer) else None
        self.clock: Callable[[], float] = self.replayer.clock if self.replayer else time.time
        self.recorder: RecordingWriter | None = None
        self._signal_feed = setup.signal_feed
        self._signal_feed_started = False
        self._trail = [HOME]  # the modes opened, in order: escape goes back along it
        self._views: dict[str, NodeView] = {}
        self._dirty: set[str] = set()     # nodes whose cached view is out of date
        self._updated: set[str] = set()   # nodes the screen on view has not heard of yet
        self._shown: dict[str, tuple[str, bool]] = {}  # node -> (status, has a sample)
        self._hand_on_timer: Timer | None = None
        self._statuses: dict[str, str] = {}
        self.first_data_at: float | None = None  # monotonic time the first sample was shown
        folders = setup.theme_folders
        themes, problems = load_themes(list(folders) if folders is not None else theme_dirs())
        for theme in themes:
            self.register_theme(theme)
        self._file_themes = [theme.name for theme in themes]
        self._theme_problems = problems
        wanted = setup.settings.theme or DEFAULT_DARK
        self._theme_missing = wanted not in self.available_themes
        self.theme = wanted if not self._theme_missing else DEFAULT_DARK
        self._remember_theme = True
        if setup.settings.keymap:
            self.set_keymap(setup.settings.keymap)

    def get_driver_class(self) -> type[Driver]:
        """Textual's choice, except that its Linux driver is the one reading any byte
        (saf.screens.input_driver: one invalid UTF-8 byte ended the cockpit)."""
        chosen = super().get_driver_class()
        if chosen.__name__ == "LinuxDriver" and chosen.__module__ == "textual.drivers.linux_driver":
            # Imported here: the Linux driver's module needs termios, absent on Windows.
            from saf.screens.input_driver import TolerantLinuxDriver
            return TolerantLinuxDriver
        return chosen

    # -- life -------------------------------------------------------------------------------
    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = False) -> None:
        """Every notice is plain text, whatever a screen passes: what notices quote (a node's
        error, a recipe's words, saf.toml's `[up]`, an exception) is never Rich markup, and
        no saf notice styles itself. Screens call Widget.notify, which passes markup=True."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=False)

    def on_mount(self) -> None:
        for problem in self._theme_problems:
            self.notify(f"{problem}\nUsing the other themes.", title="Theme not loaded",
                        severity="warning", timeout=10)
        if self._theme_missing:
            self.notify(f"There is no theme {self.setup.settings.theme!r}; using {DEFAULT_DARK}.",
                        title="Theme not found", severity="warning", timeout=10)
        self.set_interval(1.0, self._tick, name="saf-tick")
        self._start_source()
        # What exists now (Textual's widgets, a replayed recording's frames) lives as long as
        # the cockpit: keep it out of the cyclic collector's full passes, which otherwise walk
        # it all every few seconds (about a tenth of the dashboard's CPU with 64 nodes).
        # Reference counting still frees it; on_unmount hands it back to the collector.
        gc.freeze()

    @work(exclusive=True, group="source", exit_on_error=False)
    async def _start_source(self) -> None:
        try:
            await self.source.start()
        except Exception as exc:  # noqa: BLE001 - shown, the cockpit stays up
            self.notify(str(exc) or type(exc).__name__, title="Metrics could not start",
                        severity="error", timeout=30)

    async def on_unmount(self) -> None:
        gc.unfreeze()
        await self.source.stop()
        if self.recorder is not None:
            self.recorder.close()

    # -- events from the core ---------------------------------------------------------------
    def _on_event(self, event: Event) -> None:
        """Called by the source on the event loop, after the event reached the store."""
        if isinstance(event, ReplayPosition):
            # A seek back rebuilt the store: every view is out of date.
            self._dirty.update(self.store.nodes)
            self._post_to_screens_on_view(ReplayMoved(event))
            return
        if self.recorder is not None:
            self.recorder.write(event)
        node = getattr(event, "node", None)
        if isinstance(node, str):
            self._node_changed(node)

    GATHER = 0.05  # how long an urgent change waits for others of the same burst

    def _node_changed(self, node: str) -> None:
        self._dirty.add(node)
        self._updated.add(node)
        if self._shown_changed(node) and self._hand_on_timer is None:
            self._hand_on_timer = self.set_timer(self.GATHER, self._hand_on,
                                                 name="saf-hand-on")

    def _shown_changed(self, node: str) -> bool:
        """Whether what a person must see at once about the node changed: its status, or
        its first sample."""
        state = self.store.node(node)
        shown = (state.status, state.sample is not None)
        if self._shown.get(node) == shown:
            return False
        self._shown[node] = shown
        return True

    def _hand_on(self) -> None:
        """Tell the screen on view which nodes changed since it last heard; the others
        redraw from the store when they return."""
        if self._hand_on_timer is not None:
            self._hand_on_timer.stop()
            self._hand_on_timer = None
        if not self._updated:
            return
        try:
            screen = self.screen
        except (ScreenStackError, UnknownModeError):
            return  # the app is closing (a stopping hub still reports its nodes lost)
        updated, self._updated = self._updated, set()
        screen.post_message(NodesChanged(frozenset(updated)))

    def _tick(self) -> None:
        """Once a second: nodes turn stale by the clock alone, with no event to say so."""
        now = self.clock()
        for name in self.store.nodes:
            state = self.store.node(name)
            stale = state.stale(now) if state.sample is not None else False
            key = f"{state.status}:{stale}"
            if self._statuses.get(name) != key:
                self._statuses[name] = key
                self._node_changed(name)
        self._hand_on()
        self._post_to_screens_on_view(Tick(now))

    def _post_to_screens_on_view(self, message: Tick | ReplayMoved) -> None:
        """Post the clock's news to the screen on top and, while that is a modal (help, a
        question), to the screen under it too: its status line still shows."""
        for screen in reversed(self.screen_stack):
            screen.post_message(message)
            if not isinstance(screen, ModalScreen):
                break

    # -- reading ----------------------------------------------------------------------------
    @property
    def node_names(self) -> list[str]:
        return self.store.nodes

    def view(self, name: str) -> NodeView:
        """The node's view, recomputed only when something about it changed."""
        cached = self._views.get(name)
        if cached is None or name in self._dirty:
            node = self._node_info.get(name)
            cached = node_view(self.store, name, self.clock(), node.os if node else None)
            self._views[name] = cached
            self._dirty.discard(name)
            if self.first_data_at is None and cached.has_sample:
                self.first_data_at = time.monotonic()
        return cached

    def node_info(self, name: str) -> Node | None:
        return self._node_info.get(name)

    def signal_feed(self) -> SignalFeed:
        """The cockpit's signal feed: the context's, or a live one on the context's inventory
        (reusing the fleet's connections for ssh:// endpoints). It is made and started on first
        use and kept, so the subscription and its book outlive the Signals screen."""
        feed = self._signal_feed
        if feed is None:
            try:
                feed = SignalFeed.live(self.setup.inventory, fleet=self.setup.fleet)
            except Exception as exc:  # noqa: BLE001 - a bad [signals] table: shown, not fatal
                feed = SignalFeed(SignalBook(), "no signal source")
                feed.error = str(exc)
            self._signal_feed = feed
        if feed.source is not None and not self._signal_feed_started:
            self._signal_feed_started = True
            self.run_worker(feed.run(), group="signals", exit_on_error=False)
        return feed

    # -- actions ----------------------------------------------------------------------------
    def action_help(self) -> None:
        from saf.screens.help import HelpScreen

        if isinstance(self.screen, HelpScreen):
            self.screen.dismiss()
            return
        self.push_screen(HelpScreen(self.screen))

    def action_open_screen(self, name: str) -> AwaitMount:
        """Show a top-level screen; "back" then returns to the one shown before it. Await
        the result to wait until a screen opened the first time has mounted."""
        if name == HOME:
            self._trail = [HOME]
        else:
            if name in self._trail:
                self._trail.remove(name)
            self._trail.append(name)
        mounted = self.switch_mode(name)
        if name == HOME:
            # The dashboard itself, not a node screen opened from it.
            for _ in self.screen_stack[1:]:
                self.pop_screen()
        return mounted

    def go_back(self) -> None:
        """Back from a top-level screen to the one opened before it (the dashboard last)."""
        if len(self._trail) > 1:
            self._trail.pop()
        self.action_open_screen(self._trail[-1])

    def open_node(self, name: str) -> None:
        self.push_screen(entry("node").build(name))

    async def show_recipe(self, name: str) -> None:
        """The Recipes screen with the recipe called `name` highlighted."""
        from saf.screens.recipe_list import RecipeList

        await self.action_open_screen("recipes")
        # Highlight after the screen's first refresh: opened the first time, its on_mount
        # fills the list (highlighting the first recipe) only then.
        self.call_after_refresh(lambda: self.screen.query_one(RecipeList).highlight(name))

    def action_next_theme(self) -> None:
        names = self.theme_order()
        current = names.index(self.theme) if self.theme in names else -1
        self.theme = names[(current + 1) % len(names)]
        self.notify(f"Theme: {self.theme}", timeout=2)

    def theme_order(self) -> list[str]:
        """What `t` steps through (saf.screens.theming.theme_cycle); the palette's "Theme"
        offers every theme."""
        return theme_cycle(self._file_themes, self.available_themes)

    def watch_theme(self, theme: str) -> None:
        if self._remember_theme:
            remember_theme(self.setup.settings.state_path, theme)

    def action_toggle_record(self) -> None:
        if self.recorder is not None:
            path, count = self.recorder.path, self.recorder.count
            self.recorder.close()
            self.recorder = None
            self.notify(f"Saved {count} events to {path}", title="Recording stopped")
            self._post_to_screens_on_view(Tick(self.clock()))
            return
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        path = self.setup.record_dir / f"saf-{self.setup.cluster}-{stamp}.jsonl"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.recorder = RecordingWriter(path, self.setup.nodes, cluster=self.setup.cluster)
        except Exception as exc:  # noqa: BLE001 - a SafError or OSError, shown
            self.notify(str(exc), title="Cannot record", severity="error")
            return
        self.notify(f"Recording every frame to {path}\nPress R again to stop.",
                    title="Recording")
        self._post_to_screens_on_view(Tick(self.clock()))

    def action_replay_pause(self) -> None:
        if self.replayer is not None:
            self.replayer.toggle()

    def action_replay_seek(self, seconds: float) -> None:
        if self.replayer is not None:
            self.replayer.seek(self.replayer.position + seconds)

    def action_replay_speed(self, factor: float) -> None:
        if self.replayer is not None:
            self.replayer.set_speed(min(64.0, max(0.125, self.replayer.speed * factor)))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action.startswith("replay_"):
            return self.replayer is not None
        return True

    def refuse_if_readonly(self, what: str) -> bool:
        """True (and says why) when node-changing actions are off."""
        reason = self.setup.readonly_reason
        if reason is not None:
            self.notify(f"{what} is disabled: {reason}.", title="Read-only", severity="warning")
            return True
        return False

    # -- the command palette ----------------------------------------------------------------
    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """Every screen, node, recipe and action by name, each once: Textual's own ("Theme"
        lists every theme, "Quit") stand for saf's bindings of the same name, and "Go to"
        for the keys that open screens."""
        textual_titles: set[str] = set()
        for command in super().get_system_commands(screen):
            textual_titles.add(command.title.casefold())
            yield command
        for item in SCREENS:
            if item.needs_node:
                continue
            yield SystemCommand(f"Go to {item.title}", item.help,
                                lambda name=item.name: self.action_open_screen(name))
        for name in self.store.nodes:
            yield SystemCommand(f"Open node {name}", f"Details of {name}: cores, memory, NUMA,"
                                " GPUs, interfaces, disks", lambda n=name: self.open_node(n))
        for found in self.setup.recipe_library():
            yield SystemCommand(f"Recipe {found.name}", f"Show the recipe {found.name} on the "
                                "Recipes screen, ready to check or run",
                                lambda n=found.name: self.run_worker(self.show_recipe(n)))
        seen = {"command_palette", "help_quit"}
        for active in screen.active_bindings.values():
            binding = active.binding
            if (binding.action in seen or not binding.description
                    or binding.action.startswith("app.open_screen(")
                    or binding.description.casefold() in textual_titles):
                continue
            seen.add(binding.action)
            if not active.enabled:
                continue
            node = active.node
            key = self.get_key_display(binding)
            yield SystemCommand(
                f"{binding.description} ({key})", binding.tooltip or binding.description,
                lambda n=node, a=binding.action: self.call_later(self.run_action, a, n))


def make_app(setup: CockpitContext, source_factory: SourceFactory) -> SafApp:
    """Build the cockpit without running it."""
    return SafApp(setup, source_factory)


def replay_app(setup: CockpitContext, recording: Recording, *, speed: float = 1.0,
               instant: bool = False, until: float | None = None,
               start_at: float = 0.0) -> SafApp:
    """The cockpit on a recording: what `saf replay` and the snapshot tests open."""
    return make_app(setup, lambda emit: Replayer(recording, emit, speed=speed, instant=instant,
                                               until=until, start_at=start_at))
