"""Network: the healthy three nodes, and the last speed test's full matrix (a slow link with
retransmits, a pair whose path MTU is 1500 under 9000-byte interfaces)."""

from pathlib import Path

from tests.snapshot_apps._common import cockpit

RESULTS = Path(__file__).resolve().parents[1] / "fixtures" / "net" / "results"

app = cockpit("healthy-3-nodes.jsonl", net_dir=RESULTS)
