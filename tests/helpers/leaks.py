"""A pytest plugin: a process a test started that still runs after the test fails that test.

Every `subprocess.Popen` made in the pytest process (asyncio's subprocesses are Popens too) is
recorded with its owner: the test running when it was made, or the module/session fixture
whose setup made it, or whose setup started the thread that made it (an in-process SSH server's
loop runs commands long after its fixture's setup: they are the fixture's). After each test's
teardown, the live descendants of pytest are looked at (one psutil scan, a few ms): each
belongs to the owner of its nearest recorded ancestor. A process of this test, or of no owner
that was not there after the previous test, is a leak: it is given a few seconds to end on its
own (a closed channel's group is killed in the background), then it and its children are
stopped and the test fails, naming them. One left by an earlier test is named with that test.
Long-lived fixtures' processes are not a test's: they are looked at once more when the session
ends, and whatever still runs then is stopped and reported.
"""

from __future__ import annotations

import subprocess
import threading
from dataclasses import dataclass
from typing import Any

import psutil
import pytest

from tests.helpers import procs

GRACE = 5.0  # seconds a leftover is given to end on its own before it is called a leak


@dataclass(frozen=True)
class Owner:
    name: str  # a test's node id, or "fixture NAME (SCOPE scope)"
    long_lived: bool


@dataclass(frozen=True)
class _Made:
    owner: Owner
    # The process as psutil names it: pid and start time since boot (psutil's identity, so a
    # pid reused later is not this process). Not create_time(): that adds the boot time read
    # from /proc/stat at each call, which moves when the system clock is stepped or slewed
    # across a second, and a module fixture's servers were once called a test's leak so.
    proc: psutil.Process


class LeakGuard:
    def __init__(self) -> None:
        self.made: dict[int, _Made] = {}
        self.threads: dict[int, Owner] = {}  # thread ident -> the owner of what it starts
        self.fixtures: list[Owner] = []  # long-lived fixtures being set up now (a stack)
        self.test: Owner | None = None
        self.seen: set[int] = set()  # descendants after the previous check
        self._lock = threading.Lock()

    # Who is starting a process (or a thread) right now.
    def owner_now(self) -> Owner:
        inherited = self.threads.get(threading.get_ident())
        if inherited is not None:
            return inherited
        if self.fixtures:
            return self.fixtures[-1]
        return self.test or Owner("collection or session start", True)

    def record(self, pid: int) -> None:
        try:
            proc = psutil.Process(pid)
        except psutil.Error:
            return
        with self._lock:
            self.made[pid] = _Made(self.owner_now(), proc)

    def owner_of(self, proc: psutil.Process) -> Owner | None:
        """The owner of the nearest recorded process among `proc` and its ancestors."""
        chain = [proc]
        try:
            chain += proc.parents()
        except psutil.Error:
            pass
        for p in chain:
            made = self.made.get(p.pid)
            if made is not None and made.proc == p:
                return made.owner
        return None

    def leftovers(self) -> list[tuple[psutil.Process, Owner | None]]:
        """The live descendants of pytest that are no long-lived fixture's and were either
        made by a test or appeared since the previous check."""
        now = [p for p in procs.tree() if procs.alive(p)]
        found = []
        for p in now:
            owner = self.owner_of(p)
            if owner is None and p.pid in self.seen:
                continue  # there before: an earlier check already judged it
            if owner is not None and owner.long_lived:
                continue
            found.append((p, owner))
        self.seen = {p.pid for p in now}
        return found

    def check(self, test: str) -> str | None:
        """After `test`'s teardown: a report of what it (or an earlier test) left running,
        which is stopped; None when nothing was left."""
        found = self.leftovers()
        if not found:
            return None
        _, still = psutil.wait_procs([p for p, _ in found], timeout=GRACE)
        still_pids = {p.pid for p in still if procs.alive(p)}
        # Only the topmost of each leftover tree is reported (its children go with it).
        left = [(p, o) for p, o in found if p.pid in still_pids]
        pids = {p.pid for p, _ in left}
        tops = []
        for p, owner in left:
            try:
                if p.ppid() in pids:
                    continue
            except psutil.Error:
                continue
            tops.append((p, owner))
        if not tops:
            return None
        lines = []
        for p, owner in tops:
            who = owner.name if owner is not None else test
            lines.append(f"  {p.pid} {procs.cmdline(p)!r} (started by {who})")
        stuck = procs.kill_tree([p for p, _ in tops], grace=2.0)
        self.seen -= pids
        report = f"processes still running after {test}, now stopped:\n" + "\n".join(lines)
        if stuck:
            report += "\n  and would not die: " + ", ".join(procs.describe(stuck))
        return report


GUARD = LeakGuard()
_popen_init = subprocess.Popen.__init__
_thread_start = threading.Thread.start


def _recording_popen_init(self: subprocess.Popen, *args: Any, **kwargs: Any) -> None:
    _popen_init(self, *args, **kwargs)
    if self.pid:
        GUARD.record(self.pid)


def _recording_thread_start(self: threading.Thread) -> None:
    owner = GUARD.owner_now()
    _thread_start(self)
    # Recorded after start (the ident exists only then); a Popen in the thread's first
    # microseconds would be the test's, which errs on the side of reporting it.
    if self.ident is not None:
        GUARD.threads[self.ident] = owner


def install() -> None:
    subprocess.Popen.__init__ = _recording_popen_init  # type: ignore[method-assign]
    threading.Thread.start = _recording_thread_start  # type: ignore[method-assign]


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest):
    if fixturedef.scope == "function":
        yield
        return
    GUARD.fixtures.append(Owner(f"fixture {fixturedef.argname} ({fixturedef.scope} scope)", True))
    try:
        yield
    finally:
        GUARD.fixtures.pop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    GUARD.test = Owner(item.nodeid, False)
    try:
        yield
    finally:
        GUARD.test = None


@pytest.fixture(autouse=True)
def _no_process_outlives_its_test(request: pytest.FixtureRequest):
    """Set up before the test's other function fixtures, so torn down after them all."""
    yield
    report = GUARD.check(request.node.nodeid)
    if report:
        pytest.fail(report, pytrace=False)


# What the xdist workers found at their session's end, read by the controller, which alone
# has a terminal a person sees and the exit status the command returns.
_WORKERS_LEFT: list[str] = []


@pytest.hookimpl(trylast=True)  # in xdist's controller, after its workers were shut down
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Every fixture is torn down by now: whatever of pytest's still runs is a leak."""
    report = _session_leftovers()
    workeroutput = getattr(session.config, "workeroutput", None)
    if report is not None and workeroutput is not None:
        workeroutput["saf_leftovers"] = report  # an xdist worker: the controller says it
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        return
    reports = _WORKERS_LEFT + ([report] if report is not None else [])
    if not reports:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        for text in reports:
            reporter.write_line(text, red=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: a worker has finished
def pytest_testnodedown(node: Any, error: object) -> None:
    report = getattr(node, "workeroutput", {}).get("saf_leftovers")
    if report:
        _WORKERS_LEFT.append(report)


def _session_leftovers() -> str | None:
    """The leftovers of this process's session, stopped, as a report; None when none."""
    found = [(p, GUARD.owner_of(p)) for p in procs.tree() if procs.alive(p)]
    if not found:
        return None
    _, still = psutil.wait_procs([p for p, _ in found], timeout=GRACE)
    left = [(p, o) for p, o in found if p in still and procs.alive(p)]
    if not left:
        return None
    lines = [f"  {p.pid} {procs.cmdline(p)!r} (started by {o.name if o else 'unknown'})"
             for p, o in left]
    procs.kill_tree([p for p, _ in left], grace=2.0)
    return "processes still running when the session ended, now stopped:\n" + "\n".join(lines)
