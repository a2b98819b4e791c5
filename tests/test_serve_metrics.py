"""saf serve's metrics face: the exposition text read from a store filled with recorded agent
frames (tests/fixtures/frames), and a real Prometheus scraping `saf serve --metrics` on the
demo cluster."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from saf.metrics.store import MetricsStore
from saf.recording import load_recording
from saf.serve.prometheus import registry

FRAMES = Path(__file__).parent / "fixtures" / "frames"


def scrape(name: str, until: float | None = None) -> tuple[dict, str, dict]:
    """The recording's events applied to a store, scraped at its last event (or `until`):
    {(metric, labels as a sorted tuple): value}, the text, and the last raw sample per node."""
    recording = load_recording(FRAMES / name)
    store = MetricsStore()
    last: dict[str, dict] = {}
    for event in recording.events:
        if until is not None and event.time > until:
            break
        store.apply(event)
        if event.kind == "agent_sample":
            last[event.node] = event.frame
    now = until if until is not None else recording.end
    text = generate_latest(registry(store, recording.nodes, clock=lambda: now)).decode()
    series = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            series[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return series, text, last


def value(series: dict, name: str, **labels: str) -> float:
    return series[(name, tuple(sorted(labels.items())))]


def test_node_and_gpu_series_carry_the_last_samples_figures():
    series, text, last = scrape("node-nvidia-2x-rtx4090.jsonl")
    frame = last["gpu1"]
    node = {"node": "gpu1", "role": "worker"}
    assert value(series, "saf_node_up", **node) == 1
    assert value(series, "saf_node_state", **node, state="up") == 1
    assert value(series, "saf_node_state", **node, state="lost") == 0
    assert value(series, "saf_node_cpu_ratio", **node) == frame["cpu"]["percent"] / 100
    assert value(series, "saf_node_cpu_cores", **node) == 32
    assert value(series, "saf_node_load1", **node) == frame["cpu"]["load"][0]
    assert value(series, "saf_node_load15", **node) == frame["cpu"]["load"][2]
    assert value(series, "saf_node_memory_used_bytes", **node) == frame["memory"]["used"]
    assert value(series, "saf_node_memory_total_bytes", **node) == frame["memory"]["total"]
    for gpu in frame["gpus"]:
        labels = {**node, "gpu": str(gpu["index"]), "gpu_name": "NVIDIA GeForce RTX 4090"}
        assert value(series, "saf_gpu_utilization_ratio", **labels) == gpu["util"] / 100
        assert value(series, "saf_gpu_memory_used_bytes", **labels) == gpu["mem_used"]
        assert value(series, "saf_gpu_memory_total_bytes", **labels) == gpu["mem_total"]
        assert value(series, "saf_gpu_power_watts", **labels) == gpu["power_w"]
        assert value(series, "saf_gpu_temperature_celsius", **labels) == gpu["temp"]
    nic = next(n for n in frame["nics"] if n["name"] == "ens2f0")
    labels = {**node, "interface": "ens2f0"}
    assert value(series, "saf_nic_receive_bytes_per_second", **labels) == nic["rx_bps"]
    assert value(series, "saf_nic_transmit_bytes_per_second", **labels) == nic["tx_bps"]
    assert value(series, "saf_nic_receive_bytes_total", **labels) == nic["rx_bytes"]
    assert value(series, "saf_nic_receive_errors_total", **labels) == nic["rx_errors"]
    assert value(series, "saf_nic_speed_bits_per_second", **labels) == 10e9
    assert value(series, "saf_nic_mtu_bytes", **labels) == 9000
    assert value(series, "saf_agent_samples_total", **node) == 60
    # Prometheus' conventions: HELP and TYPE lines, counters end in _total.
    assert "# TYPE saf_nic_receive_bytes_total counter" in text
    assert "# TYPE saf_node_cpu_ratio gauge" in text


def test_numa_nodes_have_their_hits_and_misses():
    series, _, last = scrape("node-numa-2s-xeon-e5-2695v3.jsonl")
    for numa in last["xeon"]["numa"]:
        labels = {"node": "xeon", "role": "worker", "numa_node": str(numa["node"])}
        assert value(series, "saf_numa_hit_total", **labels) == numa["numa_hit"]
        assert value(series, "saf_numa_miss_total", **labels) == numa["numa_miss"]
        assert value(series, "saf_numa_foreign_total", **labels) == numa["numa_foreign"]
        assert value(series, "saf_numa_memory_total_bytes", **labels) == numa["mem_total"]
    assert len({k[1] for k in series if k[0] == "saf_numa_hit_total"}) == 4


def test_a_lost_node_says_up_0_and_its_figures_are_not_frozen():
    """gamma's agent was killed 30 s in: it says saf_node_up 0 and state lost, and none of
    its figures (CPU, GPU, NIC) are served at their last value; alpha and beta carry on."""
    series, _, _ = scrape("lost-node.jsonl", until=1763900040.0)
    gamma = {"node": "gamma", "role": "worker"}
    assert value(series, "saf_node_up", **gamma) == 0
    assert value(series, "saf_node_state", **gamma, state="lost") == 1
    assert not [k for k in series if dict(k[1]).get("node") == "gamma"
                and k[0].startswith(("saf_node_cpu", "saf_node_memory", "saf_gpu_", "saf_nic_",
                                     "saf_node_load"))]
    assert value(series, "saf_agent_samples_total", **gamma) > 0  # saf's own count stays
    for name in ("alpha", "beta"):
        assert value(series, "saf_node_up", node=name, role="worker" if name == "beta"
                     else "head") == 1
        assert ("saf_node_cpu_ratio", (("node", name),
                                       ("role", "worker" if name == "beta" else "head"))) \
            in series


def test_an_apple_gpu_has_no_memory_series_of_its_own():
    """Unified memory is the system's: saf_node_memory_* has it, not saf_gpu_memory_*."""
    series, _, _ = scrape("node-apple-mac-studio-m2-ultra.jsonl")
    assert any(k[0] == "saf_gpu_utilization_ratio" for k in series)
    assert not any(k[0].startswith("saf_gpu_memory") for k in series)


def test_a_node_never_heard_from_is_down_not_missing():
    recording = load_recording(FRAMES / "healthy-3-nodes.jsonl")
    text = generate_latest(registry(MetricsStore(), recording.nodes)).decode()
    assert 'saf_node_up{node="alpha",role="head"} 0.0' in text
    assert 'saf_node_state{node="alpha",role="head",state="connecting"} 1.0' in text
    assert "saf_node_cpu_ratio{" not in text


def test_the_recorded_frames_are_what_the_test_reads():
    """The fixture's raw frames parse (a guard on the helper above)."""
    line = (FRAMES / "node-nvidia-2x-rtx4090.jsonl").read_text().splitlines()[3]
    assert json.loads(json.loads(line)["raw"])["type"] == "sample"


def test_a_bad_bind_is_one_line_naming_the_option():
    import subprocess
    import sys

    for option, example in (("--metrics", "127.0.0.1:9464"), ("--web", "127.0.0.1:8000")):
        done = subprocess.run([sys.executable, "-m", "saf", "serve", option, "9464"],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode != 0
        assert done.stderr.strip() == (f"saf: {option} '9464': give HOST:PORT, e.g. {example}")


async def test_a_port_that_is_taken_is_refused_naming_the_face():
    """`--metrics` or `--web` on a port something else listens on: a clear error naming the
    option and the bind, and nothing left listening."""
    import socket

    import pytest
    from aiohttp import web

    from saf.errors import SafError
    from saf.serve.faces import Bind
    from saf.serve.http_site import listening

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SafError, match=rf"^--metrics 127\.0\.0\.1:{port}: cannot listen"):
            async with listening(web.Application(), Bind("127.0.0.1", port), "--metrics"):
                pass
    # Free again: served, then closed when the block ends.
    async with listening(web.Application(), Bind("127.0.0.1", port), "--web"):
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_two_gpus_with_one_index_make_one_series_and_a_count():
    """Issue 22 item 21: a node reporting two GPUs with index 0 gave duplicate series (a
    scrape Prometheus rejects whole). The first is kept, the other counted."""
    recording = load_recording(FRAMES / "node-nvidia-2x-rtx4090.jsonl")
    store = MetricsStore()
    for event in recording.events:
        if event.kind == "agent_sample" and len(event.frame.get("gpus") or ()) > 1:
            frame = copy.deepcopy(event.frame)
            frame["gpus"][1]["index"] = frame["gpus"][0]["index"]
            first_util = frame["gpus"][0]["util"]
            event = dataclasses.replace(event, frame=frame, typed=None)  # checked again
        store.apply(event)
    text = generate_latest(registry(store, recording.nodes, clock=lambda: recording.end)).decode()
    series: dict = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in series, f"duplicate series {key}"
            series[key] = s.value
    node = {"node": "gpu1", "role": "worker"}
    gpu0 = {**node, "gpu": "0", "gpu_name": "NVIDIA GeForce RTX 4090"}
    assert value(series, "saf_gpu_utilization_ratio", **gpu0) == first_util / 100
    assert not [k for k in series if dict(k[1]).get("gpu") == "1"]
    assert value(series, "saf_series_dropped", **node, kind="gpu") == 1
    assert value(series, "saf_series_dropped", **node, kind="nic") == 0


def test_an_amd_gpu_has_its_vram_and_gtt_apart():
    """The Strix Point APU (figures from the real amdgpu sysfs capture): VRAM is GPU memory,
    the GTT it maps is its own series, not added in."""
    series, _, last = scrape("node-amd-strix-point-apu.jsonl")
    [gpu] = last["ryzen1"]["gpus"]
    labels = {"node": "ryzen1", "role": "worker", "gpu": "0", "gpu_name": "AMD GPU [0x150e]"}
    assert value(series, "saf_gpu_memory_total_bytes", **labels) == 536870912
    assert value(series, "saf_gpu_memory_used_bytes", **labels) == 514580480
    assert value(series, "saf_gpu_gtt_total_bytes", **labels) == 16441004032
    assert value(series, "saf_gpu_gtt_used_bytes", **labels) == 3946811392
    assert value(series, "saf_gpu_utilization_ratio", **labels) == gpu["util"] / 100
    assert value(series, "saf_gpu_power_watts", **labels) == 9.087
    assert value(series, "saf_gpu_temperature_celsius", **labels) == 38.0
