"""Network: the healthy three nodes, no speed test yet (an empty results folder)."""

import tempfile
from pathlib import Path

from tests.snapshot_apps._common import cockpit

app = cockpit("healthy-3-nodes.jsonl", net_dir=Path(tempfile.mkdtemp(prefix="saf-net-empty-")))
