"""Dashboard at the end of a recording made with R in `saf demo` and ended by quitting it."""

from tests.snapshot_apps._common import cockpit

app = cockpit("demo-recorded.jsonl")
