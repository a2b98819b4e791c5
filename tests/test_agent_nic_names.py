"""An interface whose name is not UTF-8 (issue 22, item 20: one such name gave
`UnicodeEncodeError '\\udcff'` and `nics: []`, every NIC metric of the node gone). A real veth
pair in a network namespace made here, one end named b"v\\xff0"; the agent's NIC collector runs
inside it and reports every interface, the odd one backslash-escaped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.netns import IP, PREFIX, netns_skip_reason

ROOT = Path(__file__).resolve().parents[1]
SKIP = netns_skip_reason()
pytestmark = pytest.mark.skipif(SKIP is not None, reason=SKIP or "")

COLLECT = """
import json, sys
from saf.agents.collectors.nics import NicCollector
from saf.agents.context import Context
from saf.agents import protocol
collector = NicCollector(Context(root="/", platform="linux"))
why = collector.start()
sys.stdout.write(protocol.encode({"why": why, "source": collector.source,
                                  "nics": collector.collect()}))
"""


@pytest.fixture
def namespace():
    assert IP is not None
    name = f"{PREFIX}{os.getpid()}nic"
    subprocess.run([IP, "netns", "add", name], check=True, capture_output=True)
    try:
        yield name
    finally:
        subprocess.run([IP, "netns", "del", name], capture_output=True)


def test_a_name_that_is_not_utf8_is_escaped_not_fatal(namespace: str) -> None:
    assert IP is not None
    made = subprocess.run([os.fsencode(IP), b"-n", namespace.encode(), b"link", b"add",
                           b"v\xff0", b"type", b"veth", b"peer", b"name", b"vpeer"],
                          capture_output=True)
    assert made.returncode == 0, made.stderr
    done = subprocess.run([IP, "netns", "exec", namespace, sys.executable, "-c", COLLECT],
                          capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.returncode == 0, done.stderr
    frame = json.loads(done.stdout)
    assert frame["why"] is None
    assert frame["source"].startswith("/proc/net/dev")
    nics = {nic["name"]: nic for nic in frame["nics"]}
    assert set(nics) == {"lo", "vpeer", "v\\xff0"}
    assert nics["v\\xff0"]["mtu"] == 1500  # read from /sys/class/net through the raw name
