"""Dashboard of a read-only cockpit (saf --readonly)."""

from tests.snapshot_apps._common import cockpit

app = cockpit("healthy-3-nodes.jsonl", readonly=True)
