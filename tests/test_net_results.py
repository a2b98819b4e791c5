"""Speed tests without a network: the schedule, iperf3's JSON and ethtool's text (recorded
outputs), what the results say (fractions of line rate, warnings, MTU verified), saving them
atomically, comparing two runs, the recipe kind's errors; and the agent's tester itself on
loopback (a client, the token, the end of stdin)."""

from __future__ import annotations

import io
import itertools
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from saf.agents import netperf

from saf.errors import ConfigError, UsageError
from saf.net import iperf3, store
from saf.net.engine import NetOptions, new_result, schedule_line
from saf.net.results import (
    RETRANSMIT_WARN,
    Measurement,
    NetResult,
    NodeLink,
    ResultError,
    compare,
    grade,
)
from saf.net.schedule import pairs, schedule
from saf.recipe.parse import load_recipe

FIXTURES = Path(__file__).parent / "fixtures" / "net"


# -- the schedule ------------------------------------------------------------------------------
@pytest.mark.parametrize("n", range(2, 10))
def test_all_pairs_rounds_share_no_node_and_are_fewest(n):
    nodes = [f"n{i}" for i in range(n)]
    plan = schedule(nodes, "all")
    assert sorted(plan.pairs) == sorted(itertools.combinations(nodes, 2))
    for r in plan.rounds:
        members = [x for p in r for x in p]
        assert len(members) == len(set(members))
    assert len(plan.rounds) == (n - 1 if n % 2 == 0 else n)


def test_star_pairs_the_head_with_each_other_node_one_per_round():
    plan = schedule(["a", "b", "c", "d"], "star", head="c")
    assert plan.rounds == ((("c", "a"),), (("c", "b"),), (("c", "d"),))
    with pytest.raises(UsageError, match="pairs must be one of all, star"):
        pairs(["a", "b"], "ring")


def test_schedule_length_is_said_before_anything_runs():
    from saf.inventory.model import Node
    nodes = [Node(name=n, host=f"10.0.0.{i}") for i, n in enumerate("abcd")]
    options = NetOptions(streams=4, duration=2, warmup=0.5)
    line = schedule_line(new_result(nodes, options, run_id="r", cluster="c"), options)
    assert line.startswith("speed test (saf): 6 pairs in 3 rounds, 4 tests a pair (1 and 4 "
                           "streams, each way, 0.5 s warm-up + 2 s), about ")
    assert NetOptions(streams=0).problem() == "streams must be a whole number from 1 to 128, not 0"
    assert NetOptions(tool="netperf").problem() == "tool must be saf or iperf3, not 'netperf'"


# -- recorded outputs --------------------------------------------------------------------------
def test_iperf3_json_of_a_real_run_is_read_from_its_receiver():
    fig = iperf3.parse((FIXTURES / "iperf3-J_tcp-1stream-omit3_gcp-to-ibm_iperf3.9.json")
                       .read_text())
    assert fig.bits_per_second == pytest.approx(464786288.6)   # end.sum_received
    assert fig.sent_bits_per_second == pytest.approx(464521026.1)
    assert (fig.retransmits, fig.rtt_us, fig.pmtu, fig.streams) == (0, 67282, 1460, 1)
    assert fig.host_cpu_percent == pytest.approx(3.3126, abs=1e-3)


def test_iperf3_json_of_a_reverse_run_has_no_rtt_at_the_receiving_client():
    fig = iperf3.parse((FIXTURES / "iperf3-J_tcp-4streams-reverse-omit1_veth-netns_iperf3.12"
                        ".json").read_text())
    assert fig.streams == 4
    assert fig.bits_per_second > 1e8
    assert fig.retransmits is not None
    assert fig.rtt_us is None


VETH = "iperf3-J_tcp-4streams-omit1_veth-pair_iperf3.12.json"
VETH_REVERSE = "iperf3-J_tcp-4streams-reverse-omit1_veth-netns_iperf3.12.json"
VETH_LOSSY = "iperf3-J_tcp-4streams-omit1_veth-pair-tbf-1gbit-500kB-queue_iperf3.12.json"


def iperf3_result(name: str) -> NetResult:
    """A one-link result holding a recorded iperf3 run, read as the engine reads it."""
    r = NetResult(run="r", cluster="c", nodes=["a", "b"], streams=4, tool="iperf3")
    r.links = {n: NodeLink(n, f"10.0.0.{i}", "eth0", 1500, None) for i, n in enumerate("ab")}
    m = Measurement("a", "b", 4, "iperf3")
    iperf3.fill(m, iperf3.parse((FIXTURES / name).read_text()), reverse=False)
    r.measurements = [m]
    return r


@pytest.mark.parametrize(("name", "retransmits", "warned"), [
    (VETH, 66179, False),          # 0.94 % of 7.04M segments: a healthy veth pair
    (VETH_REVERSE, 5, False),
    ("iperf3-J_tcp-1stream-omit3_gcp-to-ibm_iperf3.9.json", 0, False),
    (VETH_LOSSY, 29114, True),     # 12 % of 243k segments: a queue that overflows
])
def test_recorded_iperf3_runs_warn_of_retransmits_only_over_a_share_of_segments(
        name, retransmits, warned):
    """A warning is for retransmitted segments over RETRANSMIT_WARN of those sent (the segments
    as iperf3's bytes sent / its MSS), not for any retransmit: a veth pair retransmits
    tens of thousands of segments of millions, needlessly."""
    r = iperf3_result(name)
    m = r.measurements[0]
    assert m.retransmits == retransmits
    assert m.segments > 100_000
    assert m.retransmits_much is warned
    said = [w for w in r.warnings() if "retransmit" in w]
    if warned:
        assert said == ["a → b (4 streams): 12.0 % of segments retransmitted (29.1k; saf warns "
                        "over 1 %)"]
    else:
        assert said == []
    text = result_text(r)
    assert ("↻" in text) is warned  # the matrix marks the same links


def test_retransmits_the_receiver_reported_as_duplicates_are_not_counted():
    """saf's tester reports D-SACKed retransmits (needless: the data had arrived); the share
    is of the others. The threshold is RETRANSMIT_WARN, exclusive."""
    m = Measurement("a", "b", 1, bits_per_second=1e10, retransmits=53_472, segments=4_612_741,
                    spurious=49_325)   # a healthy veth pair, one stream (TCP_INFO)
    assert m.retransmit_rate == pytest.approx(0.0009, abs=1e-4)
    assert not m.retransmits_much
    m.spurious = None                  # a kernel that does not say (before Linux 5.0)
    assert m.retransmit_rate == pytest.approx(0.0116, abs=1e-4)
    assert m.retransmits_much
    m.retransmits, m.segments, m.spurious = 100, 10_000, 0
    assert m.retransmit_rate == RETRANSMIT_WARN
    assert not m.retransmits_much
    m.retransmits = 101
    assert m.retransmits_much
    m.segments = None                  # no count of segments (macOS, an older result)
    assert m.retransmit_rate is None
    assert not m.retransmits_much


def result_text(r: NetResult) -> str:
    from rich.console import Console

    from saf.render.net_view import result_view
    console = Console(record=True, width=160, color_system=None)
    console.print(result_view(r))
    return console.export_text()


@pytest.mark.parametrize(("text", "message"), [
    ("not json", "printed no JSON"),
    ('{"error": "unable to connect to server: Connection refused"}', "unable to connect"),
    ('{"end": {}}', "no `end.sum_received`"),
    ('{"end": {"sum_received": {"bits_per_second": -1, "seconds": 1}}}', "is negative"),
    ('{"end": {"sum_received": {"bits_per_second": "fast", "seconds": 1}}}', "not a number"),
])
def test_iperf3_output_that_is_wrong_says_which_field(text, message):
    with pytest.raises(iperf3.Iperf3Error, match=message):
        iperf3.parse(text)


def test_ethtool_speed_and_duplex_from_recorded_outputs():
    assert netperf.parse_ethtool((FIXTURES / "ethtool_ens2f0_10G-fiber_real.txt").read_text()) \
        == (10000, "full")
    text = (FIXTURES / "ethtool_eth0_node-exporter-fixture_1G-link-10G-capable.txt").read_text()
    assert netperf.parse_ethtool(text) == (1000, "full")
    assert netperf.parse_ethtool("Speed: Unknown!\nDuplex: Unknown! (255)") == (None, None)


# -- what results say --------------------------------------------------------------------------
def sample_result(run: str = "r1", started: float = 1.0, gbps: float = 0.945) -> NetResult:
    r = NetResult(run=run, cluster="home", nodes=["studio", "mini"], streams=4, started=started,
                  status="ok")
    r.links = {"studio": NodeLink("studio", "10.0.0.1", "en0", 1500, 1000),
               "mini": NodeLink("mini", "10.0.0.2", "en0", 9000, 10000)}
    r.measurements = [
        Measurement("studio", "mini", 4, bits_per_second=gbps * 1e9, rtt_ms=0.3, pmtu=1500,
                    retransmits=0),
        Measurement("mini", "studio", 4, bits_per_second=0.5e9, rtt_ms=0.3, pmtu=1500,
                    retransmits=1200, segments=43_000),
        Measurement("studio", "mini", 1, error="refused: connection refused"),
    ]
    return r


def test_a_link_is_a_fraction_of_the_slower_ends_line_rate():
    r = sample_result()
    m = r.find("studio", "mini")
    assert r.line_rate_mbps("studio", "mini") == 1000
    assert r.fraction(m) == pytest.approx(0.945)
    assert grade(r.fraction(m)) == "good"
    assert grade(0.5) == "poor"
    assert grade(None) is None
    assert r.path_mtu("studio", "mini") == 1500
    assert r.mtu_verified("studio", "mini") is True
    assert r.warnings() == [
        "mini → studio (4 streams): 0.50 Gbit/s is 50 % of the 1 GbE line rate; "
        "2.8 % of segments retransmitted (1.2k; saf warns over 1 %)",
        "studio → mini (1 stream): refused: connection refused",
    ]


def test_results_are_saved_whole_and_found_by_id_prefix_or_age(tmp_path):
    first, second = sample_result("20260101-a", 1.0), sample_result("20260102-b", 2.0, 9.41)
    for r in (first, second):
        store.save(r, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["20260101-a.json", "20260102-b.json"]
    assert oct(os.stat(tmp_path / "20260101-a.json").st_mode & 0o777) == "0o600"
    assert store.find("last", tmp_path).run == "20260102-b"
    assert store.find("previous", tmp_path).run == "20260101-a"
    assert store.find("20260101", tmp_path).to_json() == first.to_json()
    with pytest.raises(ResultError, match="more than one"):
        store.find("2026", tmp_path)
    (tmp_path / "junk.json").write_text("{")
    assert len(store.list_results(tmp_path)) == 2
    with pytest.raises(ResultError, match="junk.json: cannot be read"):
        store.load(tmp_path / "junk.json")
    changes = compare(first, second)
    assert [(c.sender, c.receiver, c.streams) for c in changes] == [
        ("studio", "mini", 4), ("mini", "studio", 4), ("studio", "mini", 1)]
    assert changes[0].ratio == pytest.approx(9.41 / 0.945)


def test_a_result_file_with_a_bad_figure_is_refused_by_name(tmp_path):
    data = sample_result().to_json()
    data["measurements"][0]["bits_per_second"] = float("nan")
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ResultError, match="studio → mini: bad bits_per_second"):
        store.load(path)


def test_a_result_file_with_a_status_not_known_is_refused_by_name(tmp_path):
    """A stored status is one of RunStatus's words: saved and read back as the same word,
    and any other word (a hand-edited file) refused naming the file."""
    result = sample_result()
    result.status = "cancelled"
    store.save(result, tmp_path)
    path = tmp_path / f"{result.run}.json"
    assert json.loads(path.read_text())["status"] == "cancelled"
    assert store.load(path).status == "cancelled"
    data = json.loads(path.read_text())
    data["status"] = "finished"
    path.write_text(json.dumps(data))
    with pytest.raises(ResultError, match=r"\.json: status 'finished' is not one of running, "
                                          "ok, failed, cancelled"):
        store.load(path)


def test_the_recipe_kind_refuses_bad_keys_with_the_line(tmp_path):
    recipe = tmp_path / "bad.toml"
    recipe.write_text('name = "bad"\n\n[[steps]]\nkind = "net_test"\npairs = "ring"\n')
    with pytest.raises(ConfigError, match=r"bad.toml:5.*pairs must be all or star"):
        load_recipe(recipe)


# -- the agent's tester, on loopback -------------------------------------------------------------
def _serve_in_thread(**kwargs):
    out = io.StringIO()
    thread = threading.Thread(target=netperf.serve, args=("127.0.0.1", 10),
                              kwargs={"out": out, "watch_stdin": False, **kwargs}, daemon=True)
    thread.start()
    for _ in range(200):
        if out.getvalue():
            break
        threading.Event().wait(0.01)
    return thread, out, json.loads(out.getvalue().splitlines()[0])


def test_the_tester_measures_both_ways_and_then_stops_listening():
    thread, out, hello = _serve_in_thread(token="abc123")
    assert hello["address"] == "127.0.0.1"
    result = io.StringIO()
    netperf.client("127.0.0.1", hello["listening"], "abc123", [(1, False), (2, True)],
                   0.05, 0.2, out=result)
    lines = [json.loads(x) for x in result.getvalue().splitlines()]
    assert lines[0]["rtt_ms"] > 0
    assert lines[-1] == {"done": True}
    send, recv = lines[1], lines[2]
    assert (send["streams"], send["direction"], recv["streams"], recv["direction"]) == \
        (1, "send", 2, "recv")
    for m in (send, recv):
        assert m["bits_per_second"] > 0
        assert m["bytes"] > 0
        assert m["pmtu"] > 0
        assert m["retransmits"] >= 0
        assert m["rtt_us"] > 0
        assert m["segments"] > 0
        assert 0 <= m["spurious"] <= m["retransmits"]
    assert len(recv["streams_bps"]) == 2
    thread.join(5)
    assert not thread.is_alive()
    assert json.loads(out.getvalue().splitlines()[-1]) == {"served": 2}


def test_the_tester_serves_no_one_without_the_token():
    thread, out, hello = _serve_in_thread(token="right")
    with pytest.raises(OSError, match="refused"):
        netperf.client("127.0.0.1", hello["listening"], "wrong", [(1, False)], 0, 0.1,
                       out=io.StringIO())
    thread.join(5)
    assert not thread.is_alive()
    assert "without the token" in out.getvalue()


def test_the_tester_exits_when_its_stdin_closes():
    """A server whose saf went away (the channel's stdin closed) ends at once."""
    proc = subprocess.Popen([sys.executable, "-m", "saf.agents.main", "netperf", "serve",
                             "--bind", "127.0.0.1", "--timeout", "60"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert "listening" in json.loads(proc.stdout.readline())
    proc.stdin.close()
    assert proc.wait(10) == 0


def test_a_loopback_path_mtu_of_65535_carries_a_65536_interface():
    """An IP packet ends at 65535 bytes: TCP_INFO's path MTU on loopback (MTU 65536) is
    65535 and that is full size, not a smaller path."""
    r = NetResult(run="lo", cluster="demo", nodes=["a", "b"], streams=1)
    r.links = {n: NodeLink(n, "127.0.0.1", "lo", 65536, None) for n in ("a", "b")}
    r.measurements = [Measurement("a", "b", 1, bits_per_second=2e10, pmtu=65535)]
    assert r.mtu_verified("a", "b") is True
    r.measurements[0].pmtu = 1500
    assert r.mtu_verified("a", "b") is False


def loopback_result() -> NetResult:
    """Two nodes on loopback (lo's MTU is 65536), the path MTU as TCP_INFO gives it there."""
    r = NetResult(run="lo", cluster="lab", nodes=["alpha", "beta"], streams=1, status="ok")
    r.links = {n: NodeLink(n, "127.0.0.1", "lo", 65536, None) for n in ("alpha", "beta")}
    r.measurements = [Measurement(a, b, 1, bits_per_second=2e10, rtt_ms=0.05, pmtu=65535,
                                  retransmits=0, segments=200_000)
                      for a, b in (("alpha", "beta"), ("beta", "alpha"))]
    return r


def test_saf_net_test_and_show_print_one_path_mtu():
    """The path MTU is the kernel's (65535 on loopback: an IPv4 packet ends there), the figure
    each test's line prints; the RTT-and-MTU matrix prints that one, not lo's 65536."""
    from saf.net.engine import describe
    r = loopback_result()
    assert r.path_mtu("alpha", "beta") == 65535
    assert r.interface_mtu("alpha", "beta") == 65536
    assert "pmtu 65535" in describe(r, r.measurements[0])
    text = result_text(r)
    matrix = text[text.index("RTT and path MTU"):]
    assert "65535 ✓" in matrix
    assert "65536" not in matrix
    r.measurements = [Measurement("alpha", "beta", 1, bits_per_second=2e10)]  # no TCP_INFO
    assert r.path_mtu("alpha", "beta") == 65536
    assert r.mtu_verified("alpha", "beta") is None
