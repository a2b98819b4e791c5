"""Dashboard: 48 nodes, more than any of the sizes shows at once, so the table scrolls: the
selection is moved to the last node, and the scrollbar stands beside the rows."""

from saf.recording import Recording
from tests.fixtures.frames.synth import T0, fleet, run
from tests.snapshot_apps._common import cockpit_on

machines, nodes = fleet(48)
app = cockpit_on(Recording(path=None, started=T0, cluster="rack", nodes=tuple(nodes),
                           events=tuple(run(machines, 60))))
