"""Shared fixtures: real SSH servers on loopback and inventories that reach them.

`cluster` is parametrized over both servers: asyncssh's (always) and OpenSSH's sshd (when
installed; CI installs it). A test that takes `cluster` runs against each.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import leaks, procs, workers
from tests.helpers.servers import SSHD, AsyncsshServers, ClientKeys, OpenSSHServer, write_inventory

leaks.install()  # before any fixture starts a process: every Popen gets its owner
# A shell without job control starts a background job (`pytest ... &`, nohup) with SIGINT
# ignored, and Python keeps it so: every saf a test starts would inherit it, and the tests
# that press Ctrl-C on one would wait out their timeouts. The suite runs as in the foreground.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
# With PYTHONDONTWRITEBYTECODE in the environment (some machine images set it), every saf a
# test starts compiled saf's own modules from source again: 60-70 ms of CPU for `saf up`'s,
# hundreds of times a run, and each worker rewrote every test module's asserts anew. The
# suite's processes (the workers, every saf they start) keep bytecode as a user's Python
# does; __pycache__ is git-ignored. Installed packages have theirs from pip already.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False


def pytest_configure(config: pytest.Config) -> None:
    # The guard's hooks and its autouse fixture (tests/helpers/leaks.py).
    config.pluginmanager.register(leaks, "saf-leak-guard")
    # Which tests xdist's workers keep together (tests/helpers/workers.py).
    config.pluginmanager.register(workers, "saf-workers")


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's; here, read before plugins register
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    return workers.auto_count()


NODE_NAMES = ["alpha", "beta", "gamma"]
ROLES = {"alpha": ["head"], "beta": ["worker"], "gamma": ["worker"]}
TAGS = {"alpha": ["mac"], "beta": ["mac"], "gamma": ["nvidia"]}


@dataclass
class TestCluster:
    """Three nodes behind a real SSH server, and the inventory that reaches them."""

    kind: str  # "asyncssh" or "openssh"
    inventory: Path
    keys: ClientKeys
    ports: dict[str, int]

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update({"SAF_INVENTORY": str(self.inventory), **extra})
        return env

    def saf(self, *args: str, input: str | None = None, timeout: float = 120,
            **env: str) -> subprocess.CompletedProcess[str]:
        """Run the saf CLI as a user would, against this cluster."""
        return subprocess.run([sys.executable, "-m", "saf", *args], env=self.env(**env),
                              input=input, capture_output=True, text=True, timeout=timeout)


def _nodes(ports: dict[str, int]) -> list[dict]:
    return [{"name": n, "host": "127.0.0.1", "port": ports[n], "roles": ROLES[n],
             "tags": TAGS[n]} for n in ports]


@pytest.fixture(scope="module")
def asyncssh_cluster(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("asyncssh")
    keys = ClientKeys(root / "operator")
    servers = AsyncsshServers(root, keys, NODE_NAMES)
    ports = {n: servers.port(n) for n in NODE_NAMES}
    inv = write_inventory(root / "saf.toml", keys, _nodes(ports))
    yield TestCluster("asyncssh", inv, keys, ports)
    servers.stop()


@pytest.fixture(scope="module")
def openssh_cluster(tmp_path_factory: pytest.TempPathFactory):
    if not SSHD:
        pytest.skip("OpenSSH sshd is not installed (apt-get install openssh-server)")
    root = tmp_path_factory.mktemp("openssh")
    keys = ClientKeys(root / "operator")
    server = OpenSSHServer(root / "sshd", keys)
    # Three nodes on one sshd, as three aliases of one host would be.
    ports = {n: server.port for n in NODE_NAMES}
    inv = write_inventory(root / "saf.toml", keys, _nodes(ports))
    yield TestCluster("openssh", inv, keys, ports)
    server.stop()


@pytest.fixture(params=["asyncssh", "openssh"])
def cluster(request: pytest.FixtureRequest) -> TestCluster:
    """A three-node cluster behind asyncssh's server, then behind OpenSSH's sshd."""
    return request.getfixturevalue(f"{request.param}_cluster")


@pytest.fixture(autouse=True)
def _snapshots_in_tests_snapshots(monkeypatch: pytest.MonkeyPatch) -> None:
    """Snapshot SVGs live in tests/snapshots/<module>/ (see tests/helpers/snapshots.py)."""
    import pytest_textual_snapshot

    from tests.helpers.snapshots import SnapshotsInTestsFolder

    monkeypatch.setattr(pytest_textual_snapshot, "SVGImageExtension", SnapshotsInTestsFolder)


@pytest.fixture(scope="module")
def netns_cluster(tmp_path_factory: pytest.TempPathFactory):
    """Three nodes (alpha head, beta, gamma) in their own network namespaces, joined through
    a bridge, each with an SSH server on its veth address (tests/helpers/netns.py). One per
    module; torn down (servers, processes, namespaces) whatever the tests did."""
    from tests.helpers.netns import NetnsCluster, netns_skip_reason

    reason = netns_skip_reason()
    if reason:
        pytest.skip(reason)
    cluster = NetnsCluster(tmp_path_factory.mktemp("netns"), ["alpha", "beta", "gamma"])
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def sleep_tag() -> Iterator[str]:
    """A unique argument for `sleep` on the nodes (`sleep 917.<random>` sleeps 917 s), which
    tests/helpers/procs.py's `sleepers` finds; whatever still sleeps with it is stopped after
    the test, passed or failed."""
    tag = f"917.{uuid.uuid4().int % 10**9}"
    yield tag
    procs.kill_tree(procs.sleepers(tag))


@pytest.fixture
def popen() -> Iterator[Callable[..., subprocess.Popen]]:
    """`subprocess.Popen` for a test: each process it starts is stopped with its children
    after the test, passed or failed."""
    started: list[subprocess.Popen] = []

    def start(*args: Any, **kwargs: Any) -> subprocess.Popen:
        proc = subprocess.Popen(*args, **kwargs)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        procs.stop(proc)


@pytest.fixture
def marker() -> Iterator[str]:
    """A unique word for a test to put in the commands it runs on the nodes (`sleep 30 #
    MARKER`), which `procs.matching` finds in its own process tree; whatever still runs with
    it is stopped after the test, passed or failed."""
    word = f"saf-mark-{uuid.uuid4().hex[:12]}"
    yield word
    procs.kill_tree(procs.matching(re.escape(word)))
