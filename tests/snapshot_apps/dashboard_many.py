"""Dashboard: 48 nodes, more than any of the sizes shows at once, so the table scrolls: the
selection is moved to the last node, and the scrollbar stands beside the rows."""

from saf.cockpit.context import CockpitContext
from saf.cockpit.settings import Settings
from saf.recording import Recording, Replayer
from saf.screens.app import SafApp
from saf.themes import THEMES_DIR
from tests.fixtures.frames.synth import T0, fleet, run

machines, nodes = fleet(48)
recording = Recording(path=None, started=T0, cluster="rack", nodes=tuple(nodes),
                      events=tuple(run(machines, 60)))
ctx = CockpitContext(cluster="rack", nodes=tuple(nodes), settings=Settings(theme="saf-dark"),
                     theme_folders=(THEMES_DIR,))
app = SafApp(ctx, lambda emit: Replayer(recording, emit, instant=True))
