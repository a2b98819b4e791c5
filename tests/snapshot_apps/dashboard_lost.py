"""Dashboard: gamma's agent exited ten seconds ago; it is shown lost with its reason."""

from tests.snapshot_apps._common import cockpit

app = cockpit("lost-node.jsonl", until=40)
