"""Node screen source: a Ryzen AI box with the Strix Point iGPU read by the agent's amdgpu
collector from a real sysfs capture (use, VRAM carve-out and GTT apart, power, temp, clock)."""

from tests.snapshot_apps._common import cockpit

app = cockpit("node-amd-strix-point-apu.jsonl")
