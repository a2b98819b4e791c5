"""The agent as a program: Python 3.9 rules, running under a bare Python 3.9 (no psutil),
its stdin commands, and exiting when stdin closes."""

from __future__ import annotations

import itertools
import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from saf.agents import protocol
from saf.agents.main import until_next_beat

from saf.agentlink.build import build

ROOT = Path(__file__).resolve().parent.parent
PY39 = "/root/.pyenv/versions/3.9.18/bin/python"


def test_agent_code_needs_no_python_newer_than_3_9():
    """vermin finds nothing in agents/ that Python 3.9 lacks."""
    vermin = shutil.which("vermin") or str(Path(sys.executable).parent / "vermin")
    result = subprocess.run([vermin, "-t=3.9-", "--no-tips", "--violations", "agents/"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_agent_imports_nothing_of_saf():
    for path in (ROOT / "agents").rglob("*.py"):
        text = path.read_text()
        assert "import saf" not in text, path
        assert "from saf" not in text, path


class AgentProcess:
    """The agent under some Python, with its stdin and stdout as pipes."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, cwd=ROOT)

    def frame(self, timeout: float = 20.0) -> dict:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        assert ready, "the agent said nothing"
        line = self.proc.stdout.readline()
        assert line, self.proc.stderr.read().decode()
        return protocol.decode(line)

    def until(self, kind: str) -> dict:
        while True:
            frame = self.frame()
            if frame["type"] == kind:
                return frame

    def send(self, text: str) -> None:
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def close_stdin_and_wait(self) -> int:
        self.proc.stdin.close()
        return self.proc.wait(20)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.mark.skipif(not os.path.exists(PY39), reason="no Python 3.9 at " + PY39)
def test_zipapp_under_bare_python_3_9(tmp_path: Path):
    """The shipped zipapp runs under a Python 3.9 without psutil: the hello says why psutil
    is missing, and the samples still carry CPU, memory, NICs and disks."""
    check = subprocess.run([PY39, "-c", "import psutil"], capture_output=True)
    bundle = build(cache=tmp_path)
    agent = AgentProcess([PY39, str(bundle.path), "--interval", "0.2"])
    try:
        hello = agent.frame()
        assert hello["type"] == "hello"
        assert hello["python"].startswith("3.9.")
        if check.returncode != 0:
            assert hello["modules"]["psutil"]["ok"] is False
            assert "psutil" in hello["modules"]["psutil"]["reason"]
            assert "psutil" in hello["collectors"]["nics"]["note"]
        for name in ("cpu", "memory", "nics", "disks"):
            assert hello["collectors"][name]["ok"], hello["collectors"][name]
        assert hello["collectors"]["nvml"]["reason"]
        sample = agent.until("sample")
        assert sample["cpu"]["count"] == os.cpu_count()
        assert sample["memory"]["total"] > 0
        assert sample["nics"]
        assert sample["missing"]["gpus"]  # said why, not an empty list
        assert agent.close_stdin_and_wait() == 0
    finally:
        agent.kill()


def test_commands_on_stdin():
    """Interval change gets a reply and takes effect; an unknown command or a line that is
    not JSON gets an error, never a crash."""
    agent = AgentProcess([sys.executable, "-m", "saf.agents.main", "--interval", "5"])
    try:
        assert agent.frame()["type"] == "hello"
        agent.send('{"cmd": "interval", "seconds": 0.1, "id": 7}\n')
        reply = agent.until("reply")
        assert reply == {"type": "reply", "cmd": "interval", "id": 7, "ok": True,
                         "seconds": 0.1}
        sample = agent.until("sample")  # comes within 0.1 s, not after the first 5 s
        assert sample["interval"] == 0.1
        agent.send('{"cmd": "interval", "seconds": -1}\n')
        assert agent.until("reply")["ok"] is False
        agent.send('{"cmd": "launch-missiles", "id": 8}\n')
        reply = agent.until("reply")
        assert reply["ok"] is False
        assert reply["id"] == 8
        assert "unknown command" in reply["error"]
        agent.send("this is not json\n")
        assert "not JSON" in agent.until("error")["message"]
        assert agent.until("sample")["seq"] > sample["seq"]
        started = time.monotonic()
        assert agent.close_stdin_and_wait() == 0
        assert time.monotonic() - started < 15  # safety bound only: it exits on EOF
    finally:
        agent.kill()


def test_first_sample_does_not_wait_a_whole_interval():
    """A cockpit shows live figures at once: the first sample follows hello after a short
    baseline, even with a ten-minute interval; it has real CPU figures."""
    agent = AgentProcess([sys.executable, "-m", "saf.agents.main", "--interval", "600"])
    try:
        assert agent.frame()["type"] == "hello"
        sample = agent.until("sample")
        assert sample["seq"] == 0
        assert sample["interval"] == 600
        assert sample["cpu"]["percent"] is not None
    finally:
        agent.kill()


def test_until_next_beat_reaches_a_multiple_of_the_interval_at_least_half_away():
    assert until_next_beat(1.0, now=1_000.25) == pytest.approx(0.75)
    assert until_next_beat(1.0, now=1_000.75) == pytest.approx(1.25)  # 0.25 s is too close
    assert until_next_beat(0.5, now=1_000.1) == pytest.approx(0.4)
    assert until_next_beat(5.0, now=1_003.0) == pytest.approx(7.0)
    assert until_next_beat(1.0, now=1_000.0) == pytest.approx(1.0)


def test_samples_fall_on_the_wall_clocks_beat():
    """After the first (which comes at once), samples are taken when the wall clock reaches a
    multiple of the interval, so agents whose clocks agree sample at the same moments and
    their frames reach the hub together."""
    agent = AgentProcess([sys.executable, "-m", "saf.agents.main", "--interval", "600"])
    try:
        assert agent.frame()["type"] == "hello"
        assert agent.until("sample")["seq"] == 0
        # Asked for 0.5 s half-way between two beats: the samples still come on the beat.
        time.sleep(0.5 - (time.time() - 0.25) % 0.5)
        agent.send('{"cmd": "interval", "seconds": 0.5}\n')
        assert agent.until("reply")["ok"]
        times = [agent.until("sample")["time"] for _ in range(4)]
        offsets = [t % 0.5 for t in times]
        assert all(offset < 0.15 for offset in offsets), offsets  # taken just after the beat
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        assert all(0.35 < gap < 0.65 for gap in gaps), gaps  # one beat apart
    finally:
        agent.kill()


def test_exits_on_stdin_eof_even_with_long_interval():
    agent = AgentProcess([sys.executable, "-m", "saf.agents.main", "--interval", "600"])
    try:
        assert agent.frame()["type"] == "hello"
        assert agent.close_stdin_and_wait() == 0
    finally:
        agent.kill()


def test_cluster_address_from_ssh_connection():
    from saf.agents.main import cluster_addresses
    found = cluster_addresses("localhost", {"SSH_CONNECTION": "10.0.0.5 50022 10.0.0.17 22"})
    assert "10.0.0.17" in found
    assert "127.0.0.1" in found
    assert cluster_addresses(None, {}) == set()
