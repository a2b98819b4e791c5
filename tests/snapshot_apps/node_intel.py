"""Node screen source: an Ubuntu box with an Arc A770 read by the agent's Intel collector
(sysfs: clock and memory; no intel_gpu_top, so no utilisation or power, each with why)."""

from tests.snapshot_apps._common import cockpit

app = cockpit("node-intel-arc-a770.jsonl")
