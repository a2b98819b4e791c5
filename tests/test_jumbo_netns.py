"""Jumbo frames and socket tuning on real links: three network namespaces joined by veth pairs
through a bridge (tests/helpers/netns.py), each with its own SSH server, driven through the
`saf` CLI as a user would. The bridge's ends of the veths play the switch: at 9000 it carries
jumbo frames, at 1500 it drops them.

The revert timer is 6 s here (confirm_within): short, so a node cut off comes back within
seconds, yet long enough for a loaded CI machine to confirm in time.
"""

from __future__ import annotations

import glob
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.helpers.netns import NetnsCluster

NODES = ("alpha", "beta", "gamma")
# The armed revert's window: short, so a test waiting for a timer stays quick, but long
# enough for every pair's DF pings on a loaded 2-core machine running tests on several
# workers (at 6 s every node reverted before saf could confirm, once, in CI).
FAST = ("--var", "confirm_within=15")


def _revert_leftovers(net: NetnsCluster | None = None) -> tuple[set[str], str]:
    """Revert folders on the (shared) /tmp, and any timer process still running in the
    cluster's node namespaces (their command line names their folder)."""
    folders = set(glob.glob("/tmp/saf-revert.*"))
    timers = []
    for node in NODES if net is not None else ():
        pids = subprocess.run(["ip", "netns", "pids", net.namespace(node)],
                              capture_output=True, text=True).stdout.split()
        for pid in pids:
            try:
                line = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if "saf-revert." in line:
                timers.append(f"{node}: {line}")
    return folders, "\n".join(timers)


@pytest.fixture
def net(netns_cluster: NetnsCluster):
    """The module's cluster as a jumbo-capable switch would have it: the bridge's ends at
    9000, the nodes at 1500 and up. Checks afterwards that no revert timer was left."""
    before, _ = _revert_leftovers()
    for node in NODES:
        netns_cluster.exec(node, ["ip", "link", "set", "eth0", "up"])
        netns_cluster.set_mtu(node, 9000, end="bridge")
        netns_cluster.set_mtu(node, 1500, end="node")
        netns_cluster.link_up(node)
    yield netns_cluster
    after, timers = _revert_leftovers(netns_cluster)
    assert after - before == set(), "a revert folder was left behind"
    assert timers == "", f"a revert timer is still running: {timers}"


def _run(net: NetnsCluster, *args: str) -> subprocess.CompletedProcess[str]:
    return net.saf("run", "jumbo-frames", *FAST, *args, timeout=120)


def test_check_shows_every_change_and_changes_nothing(net):
    """--check: each node's MTU change, its armed revert, the DF pings to every other node
    (8972 bytes for 9000) and the confirmation are shown; no MTU moves."""
    done = _run(net, "--check")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert out.count("MTU 1500 -> 9000 on eth0") == 3
    assert out.count("would run: ip link set dev eth0 mtu 9000") == 3
    assert "then: ip link set dev eth0 mtu 1500; ip link set dev eth0 up" in out
    for node in NODES:
        assert f"-M do -c 2 -i 0.2 -W 1 -w 2 -s 8972 {net.address(node)}  # {node}" in out
    assert [net.mtu(n) for n in NODES] == [1500, 1500, 1500]


def test_jumbo_frames_applied_and_proven_then_a_port_at_1500_fails_the_check(net):
    """The veths go to 9000, the 8972-byte DF pings pass between every pair, the revert is
    disarmed (no timer left). A rerun checks the links again and changes nothing; with one
    switch port back at 1500, that node's links fail the check, by name."""
    done = _run(net)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("8972-byte don't-fragment pings passed between every pair; "
                             "confirmed") == 3
    assert [net.mtu(n) for n in NODES] == [9000, 9000, 9000]
    # Jumbo frames really cross: a DF ping of the full payload from alpha to gamma.
    net.exec("alpha", ["ping", "-M", "do", "-c", "1", "-W", "2", "-s", "8972",
                       net.address("gamma")])

    again = _run(net)
    assert again.returncode == 0, again.stdout
    assert again.stdout.count("already on eth0; 8972-byte don't-fragment pings pass") == 3

    net.set_mtu("gamma", 1500, end="bridge")
    broken = _run(net)
    assert broken.returncode == 1, broken.stdout
    assert "alpha↔gamma" in broken.stdout
    assert "beta↔gamma" in broken.stdout
    assert "alpha↔beta" not in broken.stdout
    assert "drop 8972-byte don't-fragment pings" in broken.stdout
    assert [net.mtu(n) for n in NODES] == [9000, 9000, 9000]  # a check changes nothing


def test_a_switch_port_without_jumbo_frames_reverts_every_node(net):
    """gamma's switch port stays at 1500: its DF pings fail, so nobody confirms; every node
    is back at 1500 and the run names the links that dropped the frames."""
    net.set_mtu("gamma", 1500, end="bridge")
    done = _run(net)
    assert done.returncode == 1, done.stdout
    assert done.stdout.count("reverted: the links alpha↔gamma, beta↔gamma dropped 8972-byte "
                             "don't-fragment pings") == 3
    assert [net.mtu(n) for n in NODES] == [1500, 1500, 1500]


def test_a_node_cut_off_by_the_change_comes_back_by_its_own_timer(net):
    """Right after beta's MTU changes, its link goes down (as a bad change would take it):
    saf cannot reach beta to revert it, so beta's armed timer does: MTU 1500 and the link up
    again, and beta answers SSH afterwards. The others revert too (no pair was proven)."""
    def cut() -> None:
        deadline = time.monotonic() + 30
        while net.mtu("beta") != 9000 and time.monotonic() < deadline:
            time.sleep(0.01)
        net.exec("beta", ["ip", "link", "set", "eth0", "down"])

    cutter = threading.Thread(target=cut)
    cutter.start()
    done = _run(net)
    cutter.join()
    assert done.returncode == 1, done.stdout
    assert "beta was not reached again after the change" in done.stdout
    assert done.stdout.count("reverted:") == 3
    assert [net.mtu(n) for n in NODES] == [1500, 1500, 1500]
    assert net.link_is_up("beta")
    back = net.saf("exec", "--on", "beta", "echo back")
    assert back.returncode == 0, back.stdout + back.stderr
    assert "back" in back.stdout, back.stdout + back.stderr


TUNING_FILE = Path("/etc/sysctl.d/90-saf-net-tuning.conf")


@pytest.fixture
def tuning_file():
    """The shipped recipe keeps its values in TUNING_FILE (the nodes' namespaces share this
    machine's /etc): made by the test, removed after it, never one that was there before."""
    if TUNING_FILE.exists():
        pytest.skip(f"{TUNING_FILE} exists on this machine; the test will not overwrite it")
    try:
        yield TUNING_FILE
    finally:
        TUNING_FILE.unlink(missing_ok=True)


def test_net_tuning_sets_only_what_differs(net, tuning_file):
    """The TCP buffer sizes (per network namespace) are set where they differ and kept in the
    sysctl.d file; the global limits, asked at their current value, are left alone. A rerun
    is skipped."""
    rmem = net.exec("alpha", ["sysctl", "-n", "net.core.rmem_max"]).stdout.strip()
    wmem = net.exec("alpha", ["sysctl", "-n", "net.core.wmem_max"]).stdout.strip()
    old = net.exec("alpha", ["sysctl", "-n", "net.ipv4.tcp_rmem"]).stdout.split()
    wanted_r = f"4096 {int(old[1]) + 4096} {old[2]}"
    args = ["run", "net-tuning", "--var", f"rmem_max={rmem}", "--var", f"wmem_max={wmem}",
            "--var", f"tcp_rmem={wanted_r}", "--var", "tcp_wmem=4096 32768 4194304"]
    check = net.saf(*args, "--check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"net.ipv4.tcp_rmem {' '.join(old)} -> {wanted_r}" in check.stdout
    assert "net.core.rmem_max" not in check.stdout.split("would set")[1].split("\n")[0]
    assert net.exec("alpha", ["sysctl", "-n", "net.ipv4.tcp_rmem"]).stdout.split() == old
    assert not tuning_file.exists()

    done = net.saf(*args)
    assert done.returncode == 0, done.stdout + done.stderr
    for node in NODES:
        assert net.exec(node, ["sysctl", "-n", "net.ipv4.tcp_rmem"]).stdout.split() == \
            wanted_r.split()
    kept = tuning_file.read_text()
    assert f"net.ipv4.tcp_rmem = {wanted_r}" in kept
    assert f"net.core.rmem_max = {rmem}" in kept
    again = net.saf(*args)
    assert again.returncode == 0, again.stdout
    assert "3 skipped" in again.stdout, again.stdout


def test_interrupting_saf_mid_change_leaves_the_timers_to_revert(net):
    """saf is stopped (Ctrl-C) right after the nodes changed: nothing was confirmed, so each
    node's own timer puts its MTU back, and then exits."""
    proc = subprocess.Popen([sys.executable, "-m", "saf", "run", "jumbo-frames", *FAST],
                            env=net.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        deadline = time.monotonic() + 60
        while net.mtu("alpha") != 9000 and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, out
    deadline = time.monotonic() + 20
    while any(net.mtu(n) != 1500 for n in NODES) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [net.mtu(n) for n in NODES] == [1500, 1500, 1500]
    while _revert_leftovers(net)[1] and time.monotonic() < deadline:
        time.sleep(0.1)
    # The timers leave their folders for saf to read; saf is gone, so the test tidies up
    # what it knows are this test's (the fixture then finds none left).
    for folder in glob.glob("/tmp/saf-revert.*"):
        if Path(folder, "reverted").exists():
            subprocess.run(["rm", "-rf", folder], check=True)


def test_a_node_that_cannot_be_read_changes_nothing_anywhere(net):
    """gamma's switch port is down before the run: its facts cannot be read, so no pair with
    gamma could be proven, and alpha and beta change nothing either."""
    net.link_down("gamma")
    try:
        done = _run(net)
    finally:
        net.link_up("gamma")
    assert done.returncode == 1, done.stdout
    assert done.stdout.count("not changed: the facts of gamma could not be read") == 2
    assert [net.mtu(n) for n in NODES] == [1500, 1500, 1500]
