"""Dashboard: three healthy nodes (two Mac Studios, one RTX 4090 box), one minute in."""

from tests.snapshot_apps._common import cockpit

app = cockpit("healthy-3-nodes.jsonl")
