"""Network as `saf demo` shows it after `s`: three nodes on loopback (MTU 65536, four
interfaces each) and the speed test's result, both recorded from a real demo
(tests/fixtures/frames/demo-recorded.jsonl, tests/fixtures/net/demo/).

That recording predates the tester's segment counts, so its retransmits warn of nothing
(docs/net.md: saf warns over 1 % of the segments sent). To see twelve warnings on the screen,
as a lossy network gives, the result is shown with every test's recorded retransmits set
against twenty times as many segments (5 %): `RESULTS` is that copy, written once per process.
"""

import json
import tempfile
from pathlib import Path

from tests.snapshot_apps._common import cockpit

RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "net" / "demo"
LOSSY_FACTOR = 20  # segments per retransmit: 5 %, over the 1 % that warns


def _lossy_copy() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="saf-net-demo-lossy-"))
    for path in RECORDED.glob("*.json"):
        result = json.loads(path.read_text())
        for m in result["measurements"]:
            if m.get("retransmits"):
                m["segments"] = m["retransmits"] * LOSSY_FACTOR
        (folder / path.name).write_text(json.dumps(result))
    return folder


RESULTS = _lossy_copy()

app = cockpit("demo-recorded.jsonl", net_dir=RESULTS)
