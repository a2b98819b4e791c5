"""Network as `saf demo` shows it after `s`: three nodes on loopback (MTU 65536, four
interfaces each) and the speed test's result with twelve warnings (retransmits on every
pair), both recorded from a real demo (tests/fixtures/frames/demo-recorded.jsonl,
tests/fixtures/net/demo/)."""

from pathlib import Path

from tests.snapshot_apps._common import cockpit

RESULTS = Path(__file__).resolve().parents[1] / "fixtures" / "net" / "demo"

app = cockpit("demo-recorded.jsonl", net_dir=RESULTS)
