"""What a cockpit shows and acts on, in one typed object: the front door (saf/commands) builds
it, the app takes it, and every screen reads it as `setup` (`SafScreen.setup`, `SafApp.setup`).

It is built once and never changed: what changes while the cockpit runs (the metrics store,
the signal book, a recording being written) lives in the objects it holds or in the app.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from saf.cockpit.settings import Settings
from saf.paths import state_dir

# Only for the annotations: the cockpit's first paint waits for whatever this module imports
# (the recipe parser and its step kinds, httpx through the model checks), and none of them is
# needed before a screen that uses them opens.
if TYPE_CHECKING:
    from saf.events import Emit
    from saf.fleet import Fleet
    from saf.inference.source import ModelsSource
    from saf.inventory.model import Inventory, Node
    from saf.ray.status import RayStatus
    from saf.recipe import library
    from saf.recipe.run import RunPlan
    from saf.recipe.runner import AskPassword
    from saf.signals.feed import SignalFeed
    from saf.up.part import Kind, Verb
    from saf.up.status import ClusterStatus

# The front door's reason for `saf --readonly`; the status line and refusals show it.
READONLY_FLAG = "started with --readonly"


class RecipeRunner(Protocol):
    """Runs a recipe somewhere else than on the cockpit's own fleet (saf serve's hub, whose
    fleet every cockpit it feeds shares); the run's final status."""

    async def __call__(self, plan: RunPlan, show: Emit,
                       ask_password: AskPassword | None = None) -> str: ...


class NodeActions(Protocol):
    """Actions that change a node, done by the core on the cockpit's behalf."""

    async def signal(self, node: str, pid: int, signal: str) -> str:
        """Send `signal` (TERM or KILL) to `pid` on `node`; returns what happened."""
        ...

    async def restart_part(self, node: str, kind: str, name: str, port: int = 0) -> str:
        """Restart a declared service or model (`kind`) on `node` (saf.up.actions)."""
        ...

    async def bring_part(self, verb: Verb, kind: Kind, node: str, name: str, show: Emit,
                         ask_password: AskPassword | None = None) -> str:
        """Bring a declared part on `node` up or down, as that part of `saf up` / `saf down`
        (saf.up.part): a recipe run whose events reach `show`; its final status."""
        ...


def _recordings() -> Path:
    return state_dir() / "recordings"


def _recipes() -> Sequence[library.Found]:
    """Every recipe the library finds (imported when the recipe list is first filled)."""
    from saf.recipe import library

    return library.available()


def _net_dir() -> Path:
    from saf.net.store import net_dir

    return net_dir()


@dataclass(frozen=True)
class CockpitContext:
    cluster: str
    nodes: tuple[Node, ...]
    settings: Settings = field(default_factory=Settings)
    # Where recipes and signals find the cluster. None: the cockpit was opened without one
    # (a replay given no inventory), and recipes are refused rather than run on whatever
    # ./saf.toml happens to be in the working directory.
    inventory: Inventory | None = None
    # The live connections, shared by metrics, recipes and ssh:// signal endpoints. None: no
    # live cluster (a replay); a recipe run then connects to `inventory` for itself.
    fleet: Fleet | None = None
    actions: NodeActions | None = None
    # A fixed feed (tests, snapshots); None: a live one on `inventory`, made on first use.
    signal_feed: SignalFeed | None = None
    # A fixed source of model endpoints (tests, snapshots); None: the live one on `fleet` or
    # `inventory`, made by the Models screen.
    models: ModelsSource | None = None
    # Called each time the recipe list is filled, so a recipe saved meanwhile is listed.
    recipe_library: Callable[[], Sequence[library.Found]] = _recipes
    # Where the Recipes screen runs a recipe; None: on `fleet` (or a fleet of `inventory`).
    recipe_runner: RecipeRunner | None = None
    # Why the front door turned node-changing actions off (--readonly, a replay); None: only
    # the settings decide.
    readonly_because: str | None = None
    record_dir: Path = field(default_factory=_recordings)
    # Where speed-test results are read and written (the Network screen).
    net_dir: Path = field(default_factory=_net_dir)
    # Folders of theme files; None: saf's own and the config folder's.
    theme_folders: tuple[Path, ...] | None = None
    # A fixed source of the Ray cluster's status (tests, snapshots); None: the Ray screen
    # follows the head's dashboard through the fleet (saf.ray.watch).
    ray_source: Callable[[], Awaitable[RayStatus]] | None = None
    # A fixed source of `saf status`'s view (tests, snapshots); None: the Cluster screen
    # gathers it through the fleet (saf.up.gather).
    cluster_status: Callable[[], Awaitable[ClusterStatus]] | None = None

    @property
    def readonly_reason(self) -> str | None:
        """Why actions that change a node are off, or None when they are on."""
        if self.readonly_because is not None:
            return self.readonly_because
        if self.settings.readonly:
            return self.settings.readonly_reason or "read-only by configuration"
        return None
