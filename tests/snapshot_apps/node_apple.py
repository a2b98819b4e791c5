"""Node screen source: a Mac Studio M2 Ultra (unified memory, no NUMA, no GPU processes)."""

from tests.snapshot_apps._common import cockpit

app = cockpit("node-apple-mac-studio-m2-ultra.jsonl")
