"""A real Prometheus (Debian's `prometheus`) scrapes `saf serve --metrics` on the demo cluster,
with the scrape config docs/serve.md gives, and its HTTP query API returns the demo nodes'
series. One saf serve and one Prometheus for the module."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from saf.demo.cluster import DemoCluster
from tests.helpers.servers import free_port

PROMETHEUS = shutil.which("prometheus")
DOCS = Path(__file__).resolve().parent.parent / "docs" / "serve.md"
pytestmark = pytest.mark.skipif(PROMETHEUS is None,
                                reason="needs Debian's prometheus (CI installs it)")


def documented_scrape_config() -> str:
    """The ```yaml block of docs/serve.md's metrics section."""
    text = DOCS.read_text(encoding="utf-8")
    section = text[text.index("## The metrics face"):]
    found = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert found, "docs/serve.md: no yaml scrape config in the metrics section"
    return found.group(1)


def get(url: str, timeout: float = 5) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as answer:
        return answer.read().decode()


def wait_for(url: str, seconds: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            get(url, 2)
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"nothing answered at {url} in {seconds} s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    """saf serve --metrics on the demo cluster, and a Prometheus scraping it every second."""
    tmp = tmp_path_factory.mktemp("prom")
    with DemoCluster(homes=tmp / "homes") as demo:
        metrics_port, prom_port = free_port(), free_port()
        env = {**os.environ, "SAF_STATE_DIR": str(tmp / "state")}
        saf = subprocess.Popen(
            [sys.executable, "-m", "saf", "-i", str(demo.inventory_path), "serve",
             "--metrics", f"127.0.0.1:{metrics_port}", "--interval", "0.5"],
            env=env, stdout=subprocess.DEVNULL, stderr=open(tmp / "saf.log", "w"))
        prom = None
        try:
            wait_for(f"http://127.0.0.1:{metrics_port}/metrics", 60, saf)
            config = documented_scrape_config().replace("127.0.0.1:9464",
                                                        f"127.0.0.1:{metrics_port}")
            config = config.replace("scrape_interval: 5s", "scrape_interval: 1s")
            assert f"127.0.0.1:{metrics_port}" in config
            (tmp / "prometheus.yml").write_text(config)
            prom = subprocess.Popen(
                [PROMETHEUS, f"--config.file={tmp / 'prometheus.yml'}",
                 f"--storage.tsdb.path={tmp / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{prom_port}"],
                stdout=subprocess.DEVNULL, stderr=open(tmp / "prometheus.log", "w"))
            wait_for(f"http://127.0.0.1:{prom_port}/-/ready", 60, prom)
            yield f"http://127.0.0.1:{prom_port}", demo, saf
        finally:
            if prom is not None:
                stop(prom)
            stop(saf)


def query(base: str, promql: str) -> list[dict]:
    answer = json.loads(get(f"{base}/api/v1/query?query={urllib.parse.quote(promql)}"))
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def until_series(base: str, promql: str, count: int, seconds: float = 45) -> list[dict]:
    deadline = time.monotonic() + seconds
    result: list[dict] = []
    while time.monotonic() < deadline:
        result = query(base, promql)
        if len(result) >= count:
            return result
        time.sleep(0.5)
    raise AssertionError(f"{promql}: {len(result)} series after {seconds} s: {result}")


def test_prometheus_scrapes_the_demo_nodes(served):
    base, demo, saf = served
    up = until_series(base, "saf_node_up == 1", 3)
    targets = json.loads(get(f"{base}/api/v1/targets"))["data"]["activeTargets"]
    assert [(t["labels"]["job"], t["health"]) for t in targets] == [("saf", "up")]
    assert sorted(s["metric"]["node"] for s in up) == ["alpha", "beta", "gamma"]
    assert {s["metric"]["node"]: s["metric"]["role"] for s in up} == {
        "alpha": "head", "beta": "worker", "gamma": "worker"}
    cpu = until_series(base, "saf_node_cpu_ratio", 3)
    assert all(0 <= float(s["value"][1]) <= 1 for s in cpu)
    memory = until_series(base, "saf_node_memory_total_bytes", 3)
    assert all(float(s["value"][1]) > 0 for s in memory)
    nics = until_series(base, 'saf_nic_receive_bytes_total{interface="lo"}', 3)
    assert {s["metric"]["node"] for s in nics} == {"alpha", "beta", "gamma"}
    # Each node's filesystems, from its agent: the demo's nodes share this machine's root.
    free = until_series(base, 'saf_filesystem_free_bytes{mountpoint="/"}', 3)
    size = until_series(base, 'saf_filesystem_size_bytes{mountpoint="/"}', 3)
    assert {s["metric"]["node"] for s in free} == {"alpha", "beta", "gamma"}
    total = os.statvfs("/").f_blocks * os.statvfs("/").f_frsize
    assert all(float(s["value"][1]) == total for s in size)
    assert all(0 < float(s["value"][1]) < total for s in free)
    assert not query(base, 'saf_filesystem_free_bytes{fstype=~"proc|sysfs|tmpfs|cgroup2?"}')
    # The demo's signal stream, through the hub, counted by Prometheus.
    frames = until_series(base, "saf_signal_frames_total > 0", 1)
    assert float(frames[0]["value"][1]) > 0
    rate = until_series(base, "rate(saf_agent_samples_total[10s]) > 0", 3)
    assert len(rate) == 3
    assert saf.poll() is None
