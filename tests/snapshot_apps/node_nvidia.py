"""Node screen source: a Linux box with two RTX 4090s and their processes."""

from tests.snapshot_apps._common import cockpit

app = cockpit("node-nvidia-2x-rtx4090.jsonl")
