"""Speed tests on real links: three network namespaces joined by veths through a bridge, an
SSH server and the agent in each (tests/helpers/netns.py). `saf net test` with saf's tester
and with iperf3 gives a full matrix of positive figures, saved with the run; `saf runs`,
`saf net show` and `saf net compare` read it back; nothing is left listening afterwards."""

from __future__ import annotations

import json

import pytest

FAST = ["--duration", "0.3", "--warmup", "0.1", "--streams", "2"]


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return {"SAF_STATE_DIR": str(tmp_path_factory.mktemp("state"))}


def listening(net, node: str) -> list[str]:
    """TCP ports the node listens on, besides its SSH server's."""
    out = net.exec(node, ["ss", "-Htln"], check=False).stdout
    ports = [line.split()[3] for line in out.splitlines() if len(line.split()) > 3]
    return [p for p in ports if not p.endswith(f":{net.ports[node]}")]


def assert_full_matrix(result: dict, nodes: list[str], tool: str, counts=(1, 2)) -> None:
    measured = {(m["sender"], m["receiver"], m["streams"]): m for m in result["measurements"]}
    for a in nodes:
        for b in nodes:
            if a == b:
                continue
            for streams in counts:
                m = measured[(a, b, streams)]
                assert m["error"] is None, m
                assert m["tool"] == tool
                assert m["bits_per_second"] > 1e6, m
                assert m["pmtu"] == 1500 if tool == "saf" or m["pmtu"] else True
    assert len(measured) == len(nodes) * (len(nodes) - 1) * len(counts)
    for node in nodes:
        link = result["links"][node]
        assert (link["interface"], link["mtu"], link["speed_mbps"]) == ("eth0", 1500, 10000)


def test_saf_tester_fills_the_matrix_and_says_the_schedule_first(netns_cluster, state):
    net = netns_cluster
    done = net.saf("net", "test", *FAST, **state)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    schedule = out.index("speed test (saf): 3 pairs in 3 rounds, 4 tests a pair")
    assert schedule < out.index("alpha → beta  1 stream")
    assert "Gbit/s, 2 streams (row sends to column)" in out
    shown = json.loads(net.saf("net", "show", "last", "--json", **state).stdout)
    assert shown["status"] == "ok"
    assert shown["tool"] == "saf"
    assert_full_matrix(shown, net.nodes, "saf")
    for m in shown["measurements"]:
        assert m["rtt_ms"] > 0
        assert m["retransmits"] >= 0
        assert m["segments"] > 0
    # A veth link retransmits thousands of segments, needlessly (D-SACKed): no warning.
    assert [w for w in shown["warnings"] if "retransmit" in w] == []
    for node in net.nodes:
        assert listening(net, node) == [], node
    runs = json.loads(net.saf("runs", "--json", **state).stdout.splitlines()[-1])
    assert (runs["recipe"], runs["status"], runs["run"]) == ("netperf", "ok", shown["run"])


def test_iperf3_fills_the_matrix_from_its_json_and_two_runs_compare(netns_cluster, state):
    net = netns_cluster
    # iperf3 counts whole seconds (1 s warm-up + 1 s here): one stream keeps this short; its
    # multi-stream JSON is read in tests/test_net_results.py from a recording.
    done = net.saf("net", "test", *FAST[:4], "--streams", "1", "--tool", "iperf3", "--json",
                   **state)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert result["tool"] == "iperf3"
    assert_full_matrix(result, net.nodes, "iperf3", counts=(1,))
    assert all(link["iperf3"] for link in result["links"].values())
    for node in net.nodes:
        assert listening(net, node) == [], node
    compared = net.saf("net", "compare", "previous", "last", "--json", **state)
    assert compared.returncode == 0, compared.stderr
    rows = [json.loads(line) for line in compared.stdout.splitlines()]
    assert len(rows) == 12  # the saf run's 1 and 2 streams, iperf3's 1 stream
    both = [r for r in rows if r["streams"] == 1]
    assert len(both) == 6
    assert all(r["before_gbps"] > 0 and r["after_gbps"] > 0 and r["ratio"] > 0 for r in both)
    assert all(r["after_gbps"] is None for r in rows if r["streams"] == 2)
    text = net.saf("net", "compare", **state).stdout
    assert "alpha → beta" in text
    assert "BEFORE" in text


def test_the_recipe_check_measures_nothing_and_says_what_would_run(netns_cluster, state):
    net = netns_cluster
    done = net.saf("run", "netperf", "--check", "-V", "pairs=star", "-V", "streams=3", **state)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "would run: speed test (saf): 2 pairs in 2 rounds, 4 tests a pair (1 and 3" \
        in done.stdout
    bad = net.saf("run", "netperf", "-V", "streams=lots", **state)
    assert bad.returncode == 1
    assert "'lots' is not a whole number" in bad.stdout


def test_a_node_that_cannot_be_reached_fails_its_links_only(netns_cluster, state):
    """gamma's link is down: its pairs fail with the reason; alpha ↔ beta is measured."""
    net = netns_cluster
    net.link_down("gamma")
    try:
        done = net.saf("net", "test", *FAST, "--pairs", "star", "--json", **state)
    finally:
        net.link_up("gamma")
    assert done.returncode == 1
    result = json.loads(done.stdout)
    assert result["status"] == "failed"
    assert "not reached" in result["links"]["gamma"]["error"]
    by_pair = {(m["sender"], m["receiver"], m["streams"]): m for m in result["measurements"]}
    assert by_pair[("alpha", "beta", 2)]["bits_per_second"] > 0
    assert "gamma: not reached" in by_pair[("alpha", "gamma", 2)]["error"]
    assert any("gamma: not reached" in w for w in result["warnings"])


def test_a_lossy_link_warns_of_its_retransmits(netns_cluster, state):
    """gamma's eth0 sends through a 1 Gbit/s shaper whose queue overflows (tc tbf): its
    tests retransmit a large share of their segments and the run says so, with the
    threshold; the other way round stays quiet."""
    net = netns_cluster
    shaper = ["tc", "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", "1gbit", "burst",
              "64kb", "limit", "100kb"]
    made = net.exec("gamma", shaper, check=False)
    if made.returncode != 0:
        pytest.skip(f"no tbf qdisc here: {made.stderr.strip()}")
    try:
        done = net.saf("net", "test", *FAST, "--pairs", "star", "--on", "alpha,gamma",
                       "--json", **state)
    finally:
        net.exec("gamma", ["tc", "qdisc", "del", "dev", "eth0", "root"], check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    said = [w for w in json.loads(done.stdout)["warnings"] if "retransmit" in w]
    assert said, said
    assert all(w.startswith("gamma → alpha") and "saf warns over 1 %" in w
                        for w in said), said
