"""Dashboard: gamma's GPU over its temperature threshold, beta swapping, alpha's NIC erroring."""

from tests.snapshot_apps._common import cockpit

app = cockpit("gpu-over-temp.jsonl")
