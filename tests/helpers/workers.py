"""A pytest plugin: which tests pytest-xdist's workers may split up, and which stay together.

The test command runs on several workers (`-n auto --dist loadgroup`, pyproject.toml), which
hands out tests one by one. A module whose tests share a module- or session-scoped fixture of
the suite's own (an SSH fleet, a Ray head, a model server, a wheel) is kept on one worker, in
its order, as a serial run would: split up, each worker would build that fixture again, and a
module's last test that changes the shared nodes (`test_zz_...`) could run before the others.
Its tests get the marker `xdist_group(<module path>)`. A test that already names a group keeps
it. Modules of function-scoped tests (the snapshots, the parsers) go one test at a time, so no
single module holds the run up.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

SHARED = ("module", "session", "package")
# GNU readline, once pytest has imported it, sets these in the C environment: invisible in the
# controller's os.environ, but a worker it starts is born with them (COLUMNS=80), and every saf
# a test starts with a copy of os.environ would then cut its tables to 80 columns.
TERMINAL_ENV = ("COLUMNS", "LINES")
MOST_WORKERS = 8  # each runs SSH servers, agents and at times a Ray head: memory, not CPU
# Modules whose tests run alone (no shared fixture) but each for 10-30 s: a whole `saf up` /
# `down` on loopback nodes, real Ray, model servers, an inner pytest run. xdist hands out
# the shared-fixture modules first (largest first), then single tests in collection order,
# which is alphabetical: these came last, and the run ended on one or two of them while the
# other workers sat idle (the last 30 s at 75% idle CPU on 2 cores). Handed out first among
# the single tests, the short ones fill the end instead. Order only: nothing is left out.
LONG_SINGLES = frozenset({
    "tests/test_up_ray.py", "tests/test_up.py", "tests/test_up_lost.py",
    "tests/test_status_differs.py", "tests/test_up_orphans.py", "tests/test_leak_guard.py",
    "tests/test_up_orphan_models.py", "tests/test_kept_model_restarted.py",
    "tests/test_cluster_detached.py", "tests/test_up_part.py"})
# Fixtures that reach a module fixture through request.getfixturevalue, out of pytest's sight
# (tests/conftest.py: `cluster` is `asyncssh_cluster`, then `openssh_cluster`).
INDIRECT = frozenset({"cluster"})


def shares_a_fixture(item: pytest.Item) -> bool:
    """Whether `item` uses a module/session fixture that the suite itself defines (a plugin's,
    like tmp_path_factory or an event loop, has an empty baseid and is cheap to make again)."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    if INDIRECT & set(info.names_closure):
        return True
    return any(d.scope in SHARED and d.baseid
               for defs in info.name2fixturedefs.values() for d in defs)


@pytest.hookimpl(tryfirst=True)  # before xdist reads the markers into the node ids
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("xdist_group") is None and shares_a_fixture(item):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::", 1)[0]))
    # Stable: each module keeps its own order, the groups keep theirs.
    items.sort(key=lambda item: item.nodeid.split("::", 1)[0] not in LONG_SINGLES)


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's, in the controller: a worker is made
def pytest_configure_node(node: Any) -> None:
    node.workerinput["saf_terminal_env"] = {k: os.environ.get(k) for k in TERMINAL_ENV}


def pytest_configure(config: pytest.Config) -> None:
    """In a worker, the terminal's variables as the controller's os.environ has them."""
    wanted = getattr(config, "workerinput", {}).get("saf_terminal_env")
    for key, value in (wanted or {}).items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def auto_count() -> int:
    """`-n auto`'s number of workers (tests/conftest.py asks): twice the cores this process
    may use. Most tests wait on SSH, processes and sockets, not on a core, so a worker that
    waits leaves its core to another."""
    return max(1, min(MOST_WORKERS, 2 * len(os.sched_getaffinity(0))))
