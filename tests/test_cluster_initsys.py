"""The init systems' answers read by saf.cluster.initsys, and the whole conversation of the
`service` step with a recorded machine, the exact commands asserted.

The parsers are tested on real outputs (tests/fixtures/services/, copied verbatim from
/work/shared/reference/, whose SOURCES.md says where each was captured). The conversation
runs over a real SSH server on loopback whose systemctl, journalctl, loginctl, launchctl and
id are recorded-output players (tests/helpers/recorded.py): the machine is a folder the test
writes, so what `systemctl show` answers can change between runs as the real service's state
would. Each answer is a real capture except `systemctl show` of a unit that is gone (no such
capture exists: `LoadState=not-found` with the states systemd gives a unit it cannot find).
"""

from __future__ import annotations

import asyncio
import json
import plistlib
import re
import sys
from pathlib import Path

import pytest

from saf.cluster.initsys import (
    SHOWN,
    InitFacts,
    journal_lines,
    parse_facts,
    parse_launchctl_print,
    parse_properties,
    status_from_launchd,
    status_from_systemd,
)
from saf.cluster.service import read_status
from saf.cluster.units import ServiceSpec, render_launchd, render_systemd
from saf.errors import ConfigError
from saf.events import Event
from saf.fleet import Fleet
from saf.inventory import load_inventory
from saf.recipe import load_recipe
from saf.recipe.events import NodeStepFinished
from saf.recipe.prepare import prepare
from saf.recipe.runner import Runner
from tests.helpers import recorded
from tests.helpers.recorded import RecordedNodes

CAPTURES = Path(__file__).parent / "fixtures" / "services"


def capture(prefix: str) -> str:
    (path,) = CAPTURES.glob(prefix + "*")
    return path.read_text()


def section(report: str, title: str) -> str:
    """A ```text block of the activitywatch report, under `## title`."""
    found = re.search(rf"## {title}\n\n```text\n(.*?)\n\n\[exit=0\]", report, re.S)
    assert found, title
    return found.group(1) + "\n"


REPORT = capture("loginctl-show-user")
WIBBLE = capture("systemctl-show_wibble")
SSH_FAILED = capture("systemctl-show_ssh")
AW_AFTER = section(REPORT, "unit_state_after_server_kill")
LOGINCTL = section(REPORT, "loginctl_show_user")
CRASH_LOOP = capture("journalctl-u-ollama")
GONE = "Id=saf-beat.service\nLoadState=not-found\nActiveState=inactive\nSubState=dead\n" \
       "UnitFileState=\nNRestarts=0\nMainPID=0\n"  # composed: see the module's docstring


# -- parsers ---------------------------------------------------------------------------------
def test_systemctl_show_active() -> None:
    seen = status_from_systemd("wibble", parse_properties(WIBBLE), user=False)
    assert (seen.state, seen.detail, seen.active, seen.restarts, seen.pid, seen.enabled) == (
        "active", "running", True, 0, 3764255, True)
    assert seen.since == "Tue 2024-02-27 22:50:37 UTC"
    assert seen.last_exit is None
    assert seen.kept_across_reboots
    assert not seen.disabled
    # The same unit disabled by hand: it runs, but no boot starts it.
    off = status_from_systemd("wibble", parse_properties(WIBBLE.replace(
        "UnitFileState=enabled", "UnitFileState=disabled")), user=False)
    assert (off.active, off.enabled, off.disabled, off.kept_across_reboots) == (
        True, False, True, False)


def test_systemctl_show_failed_after_restarts() -> None:
    seen = status_from_systemd("ssh", parse_properties(SSH_FAILED), user=False)
    assert not seen.active
    assert (seen.restarts, seen.pid, seen.last_exit, seen.since) == (5, None, "exit-code", None)


def test_systemctl_user_show_counts_a_restart() -> None:
    before = section(REPORT, "unit_state_before_kill")
    first = status_from_systemd("aw", parse_properties(before), user=True)
    after = status_from_systemd("aw", parse_properties(AW_AFTER), user=True)
    assert (first.pid, first.restarts) == (1182, 0)
    assert (after.pid, after.restarts, after.active, after.manager) == (
        34701, 1, True, "systemd-user")


def test_a_missing_unit_is_absent() -> None:
    assert status_from_systemd("beat", parse_properties(GONE), user=False).state == "absent"
    assert status_from_systemd("beat", {}, user=False).state == "absent"


def test_launchctl_print() -> None:
    running = parse_launchctl_print(capture("launchctl-print-gui-501_LaunchAgent_running"))
    seen = status_from_launchd("probe", running, daemon=False)
    assert (seen.state, seen.detail, seen.pid, seen.restarts, seen.last_exit) == (
        "active", "running", 48630, 0, None)
    assert running["program"].endswith("seatbelt-probe-helper")  # not a nested block's line
    stopped = status_from_launchd("probe", parse_launchctl_print(
        capture("launchctl-print-gui-501_LaunchAgent_not-running")), daemon=False)
    assert (stopped.active, stopped.detail, stopped.pid, stopped.last_exit) == (
        False, "not running", None, "2")
    daemon = status_from_launchd("otel", parse_launchctl_print(
        capture("launchctl-print-system_otelcol")), daemon=True)
    assert (daemon.active, daemon.pid, daemon.manager) == (True, 54109, "launchd-daemon")
    assert status_from_launchd("x", parse_launchctl_print(""), daemon=True).state == "absent"


def test_journal_lines() -> None:
    text = capture("journalctl-u-o-short-iso")
    lines = journal_lines(text.split("\n", 1)[1] + "-- No entries --\n")  # past the prompt
    assert len(lines) == 10
    assert lines[0].startswith("2023-09-08T17:20:30+0200 tarta ")


def test_facts() -> None:
    facts = parse_facts("os Linux\nuid 1000\nuser daniele\nhome /home/daniele\ninit systemd\n"
                        + [x for x in LOGINCTL.splitlines() if x.startswith("Linger=")][0])
    assert facts == InitFacts("systemd", 1000, "daniele", "/home/daniele", True)
    assert facts.manager().kind == "systemd-user"
    assert parse_facts("uid 0\ninit systemd\n").manager().kind == "systemd"
    assert parse_facts("uid 501\ninit launchd\n").manager().kind == "launchd-agent"
    assert parse_facts("uid 0\ninit none\n").manager().kind == "detached"


# -- the conversation with a recorded machine ------------------------------------------------
def machine(folder: Path, *, systemd: bool, darwin: bool = False, uid: int = 0,
            user: str = "root", show: str = WIBBLE) -> None:
    (folder / "root" / "etc").mkdir(parents=True, exist_ok=True)
    if systemd:
        (folder / "root" / "run" / "systemd" / "system").mkdir(parents=True, exist_ok=True)
    unit = "saf-beat.service"
    ctl = {f"show -p {','.join(SHOWN)} {unit}": {"stdout": show},
           "daemon-reload": {}, f"enable {unit}": {}, f"restart {unit}": {},
           f"disable --now {unit}": {}, f"reset-failed {unit}": {}}
    commands = {
        "id": {"-u": {"stdout": f"{uid}\n"}, "-un": {"stdout": f"{user}\n"}},
        "uname": {"-s": {"stdout": "Darwin\n" if darwin else "Linux\n"}},
        "systemctl": {**ctl, **{f"--user {k}": v for k, v in ctl.items()}},
        "journalctl": {f"-u {unit} -n 20 --no-pager -o short-iso": {"stdout": CRASH_LOOP},
                       f"--user -u {unit} -n 20 --no-pager -o short-iso":
                       {"stdout": CRASH_LOOP}},
        "loginctl": {f"show-user {user}": {"stdout": LOGINCTL}},
    }
    if darwin:
        del commands["systemctl"], commands["journalctl"], commands["loginctl"]
        commands["launchctl"] = {
            f"print gui/{uid}/saf-beat": {"stdout": show},
            f"bootout gui/{uid}/saf-beat": {}, f"enable gui/{uid}/saf-beat": {},
            f"bootstrap gui/{uid} *": {}}
    (folder / "commands.json").write_text(json.dumps(commands))


@pytest.fixture
def node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(recorded, "MACHINES", tmp_path)
    started: list[RecordedNodes] = []

    def start(**kw) -> RecordedNodes:
        name = f"m{len(started)}"
        machine(tmp_path / name, **kw)
        nodes = RecordedNodes(tmp_path / f"run{len(started)}", {"n": name})
        started.append(nodes)
        return nodes
    yield start
    for nodes in started:
        nodes.close()


def recipe(root: Path, state: str = "present") -> Path:
    path = root / f"svc-{state}.toml"
    path.write_text('name = "svc"\n\n[[steps]]\nkind = "service"\nservice = "beat"\n'
                    f'command = "{sys.executable} -m http.server 8000"\nrestart = "always"\n'
                    f'env = {{ MODE = "a b $x 100%" }}\nstate = "{state}"\nsettle = 0\n')
    return path


def run(nodes: RecordedNodes, path: Path, *, check: bool = False) -> NodeStepFinished:
    async def go() -> NodeStepFinished:
        events: list[Event] = []
        async with Fleet(load_inventory(nodes.inventory)) as fleet:
            prepared = await prepare(load_recipe(path), fleet, {}, None)
            await Runner(prepared, fleet, events.append, run_id="t", check=check).run()
        return next(e for e in events if isinstance(e, NodeStepFinished))
    return asyncio.run(go())


def calls(nodes: RecordedNodes, since: int) -> list[str]:
    return [c for c in nodes.calls()[since:] if not c.startswith(("id ", "uname "))]


SPEC = ServiceSpec("beat", (sys.executable, "-m", "http.server", "8000"),
                   env={"MODE": "a b $x 100%"}, restart="always")
SHOW = f"systemctl show -p {','.join(SHOWN)} saf-beat.service"


def set_show(nodes: RecordedNodes, text: str, key: str = "systemctl", args: str = "") -> None:
    path = recorded.MACHINES / nodes.machines["n"] / "commands.json"
    commands = json.loads(path.read_text())
    commands[key][args or SHOW.split(" ", 1)[1]] = {"stdout": text}
    path.write_text(json.dumps(commands))


def test_system_unit_conversation(node, tmp_path: Path) -> None:
    nodes = node(systemd=True)
    unit = nodes.facts_root("n") / "etc" / "systemd" / "system" / "saf-beat.service"

    check = run(nodes, recipe(tmp_path), check=True)
    assert check.status == "changed"
    assert check.message == "would install a systemd system unit"
    assert calls(nodes, 0) == [SHOW]  # facts only
    assert check.would[1:] == ["systemctl daemon-reload", "systemctl enable saf-beat.service",
                               "systemctl restart saf-beat.service"]
    assert "[Service]" in check.would[0]
    assert "Restart=always" in check.would[0]
    assert not unit.exists()

    mark = len(nodes.calls())
    first = run(nodes, recipe(tmp_path))
    assert first.status == "changed", (first.message, first.tail)
    assert first.message.startswith("saf-beat active under a systemd system unit, pid 3764255")
    assert calls(nodes, mark) == [SHOW, "systemctl daemon-reload",
                                  "systemctl enable saf-beat.service",
                                  "systemctl restart saf-beat.service", SHOW, SHOW]
    assert unit.read_text() == render_systemd(SPEC, system=True)

    mark = len(nodes.calls())
    again = run(nodes, recipe(tmp_path))
    assert again.status == "ok", again.message
    assert calls(nodes, mark) == [SHOW]

    # It failed since (systemd gave up restarting it): started again, and when it stays
    # down the step fails with the journal's last lines.
    set_show(nodes, SSH_FAILED)
    mark = len(nodes.calls())
    broken = run(nodes, recipe(tmp_path))
    assert broken.status == "failed"
    assert "saf-beat is unknown" in broken.message
    assert calls(nodes, mark) == [
        SHOW, "systemctl daemon-reload", "systemctl enable saf-beat.service",
        "systemctl restart saf-beat.service", SHOW, SHOW,
        "journalctl -u saf-beat.service -n 20 --no-pager -o short-iso"]
    assert any("restart counter is at 2" in line for line in broken.tail)

    set_show(nodes, GONE)
    mark = len(nodes.calls())
    down = run(nodes, recipe(tmp_path, "absent"))
    assert down.status == "changed", (down.message, down.tail)
    assert calls(nodes, mark) == [SHOW, "systemctl disable --now saf-beat.service",
                                  "systemctl daemon-reload",
                                  "systemctl reset-failed saf-beat.service", SHOW]
    assert not unit.exists()
    mark = len(nodes.calls())
    assert run(nodes, recipe(tmp_path, "absent")).status == "skipped"
    assert calls(nodes, mark) == [SHOW]


def test_user_unit_when_not_root(node, tmp_path: Path) -> None:
    """Not root: a --user unit in the login user's home; the user lingers (the recorded
    loginctl says Linger=yes), so nothing asks for it."""
    nodes = node(systemd=True, uid=1000, user="daniele", show=AW_AFTER)
    first = run(nodes, recipe(tmp_path))
    assert first.status == "changed", (first.message, first.tail)
    assert "systemd --user unit, pid 34701" in first.message
    assert "1 restarts" in first.message
    user_show = "systemctl --user " + SHOW.split(" ", 1)[1]
    assert calls(nodes, 0) == ["loginctl show-user daniele", user_show,
                               "systemctl --user daemon-reload",
                               "systemctl --user enable saf-beat.service",
                               "systemctl --user restart saf-beat.service", user_show,
                               user_show]
    home = nodes.servers["n"].home
    unit = home / ".config" / "systemd" / "user" / "saf-beat.service"
    assert unit.read_text() == render_systemd(SPEC, system=False)


def test_user_unit_asks_for_lingering(node, tmp_path: Path) -> None:
    nodes = node(systemd=True, uid=1000, user="daniele", show=AW_AFTER)
    path = recorded.MACHINES / nodes.machines["n"] / "commands.json"
    commands = json.loads(path.read_text())
    commands["loginctl"]["show-user daniele"] = {
        "stdout": LOGINCTL.replace("Linger=yes", "Linger=no")}
    path.write_text(json.dumps(commands))
    check = run(nodes, recipe(tmp_path), check=True)
    assert check.would[0].startswith("loginctl enable-linger daniele || ")
    # This machine's loginctl refuses (no recording of enable-linger): the step stops there,
    # with loginctl's own exit status and what to do (tests/test_systemd_real.py: a real one).
    refused = run(nodes, recipe(tmp_path))
    assert refused.status == "failed"
    assert refused.message == "loginctl failed (exit 127)"
    assert any("sudo loginctl enable-linger daniele" in line for line in refused.tail), \
        refused.tail
    assert "loginctl enable-linger daniele" in nodes.calls()
    assert not any("daemon-reload" in c for c in nodes.calls())


def test_launch_agent_conversation(node, tmp_path: Path) -> None:
    running = capture("launchctl-print-gui-501_LaunchAgent_running")
    nodes = node(systemd=False, darwin=True, uid=501, user="me", show=running)
    first = run(nodes, recipe(tmp_path))
    assert first.status == "changed", (first.message, first.tail)
    assert "a launchd LaunchAgent, pid 48630" in first.message
    assert calls(nodes, 0) == ["launchctl print gui/501/saf-beat",
                               "launchctl bootout gui/501/saf-beat",
                               "launchctl enable gui/501/saf-beat",
                               f"launchctl bootstrap gui/501 {nodes.servers['n'].home}"
                               "/Library/LaunchAgents/saf-beat.plist",
                               "launchctl print gui/501/saf-beat",
                               "launchctl print gui/501/saf-beat"]
    home = nodes.servers["n"].home
    plist = (home / "Library" / "LaunchAgents" / "saf-beat.plist").read_bytes()
    assert plist == render_launchd(SPEC, daemon=False, home=str(home))
    assert plistlib.loads(plist)["KeepAlive"] is True
    assert (home / "Library" / "Logs" / "saf").is_dir()
    mark = len(nodes.calls())
    assert run(nodes, recipe(tmp_path)).status == "ok"
    assert calls(nodes, mark) == ["launchctl print gui/501/saf-beat"]


def test_what_cannot_be_a_service_is_refused_on_the_node(node, tmp_path: Path) -> None:
    """A program the node does not have, or pinning a Mac cannot do: the node fails with the
    reason, in --check too, and nothing is installed."""
    nodes = node(systemd=True)
    path = tmp_path / "bad.toml"
    path.write_text('[[steps]]\nkind = "service"\nservice = "beat"\n'
                    'command = "no-such-program-h24 --serve"\n')
    refused = run(nodes, path, check=True)
    assert refused.status == "failed"
    assert refused.message == ("service 'beat': 'no-such-program-h24' is not a program on n "
                               "(command -v found nothing)")
    mac = node(systemd=False, darwin=True, uid=501, user="me")
    path.write_text('[[steps]]\nkind = "service"\nservice = "beat"\n'
                    f'command = "{sys.executable}"\ncpus = "0-3"\n')
    refused = run(mac, path)
    assert refused.status == "failed"
    assert "macOS has no CPU or NUMA pinning" in refused.message
    assert not any(c.startswith("launchctl") for c in mac.calls())


def test_a_relative_program_is_found_on_the_node(node, tmp_path: Path) -> None:
    nodes = node(systemd=True)
    path = tmp_path / "rel.toml"
    path.write_text('[[steps]]\nkind = "service"\nservice = "beat"\ncommand = "python3 -V"\n')
    check = run(nodes, path, check=True)
    assert check.status == "changed", check.message
    assert 'ExecStart="' + str(nodes.root / "bin" / "n-m0" / "python3") + '" "-V"' \
        in check.would[0]


@pytest.mark.parametrize(("keys", "words"), [
    ('service = "beat"\nenv = { A = "x\\ny" }', "env"),
    ('service = "Bad Name"', "service"),
    ('service = "beat"\ncommand = "/bin/sleep \'100"', "command"),
])
def test_hostile_step_values_are_refused_before_anything_runs(node, tmp_path: Path, keys: str,
                                                              words: str) -> None:
    nodes = node(systemd=True)
    path = tmp_path / "hostile.toml"
    text = '[[steps]]\nkind = "service"\ncommand = "/bin/sleep 100"\n' + keys + "\n"
    if "command =" in keys:
        text = text.replace('command = "/bin/sleep 100"\n', "", 1)
    path.write_text(text)

    async def go() -> None:
        async with Fleet(load_inventory(nodes.inventory)) as fleet:
            await prepare(load_recipe(path), fleet, {}, None)
    with pytest.raises(ConfigError) as caught:
        asyncio.run(go())
    assert str(path.name) in str(caught.value), caught.value
    assert words in str(caught.value), caught.value
    assert nodes.calls() == []


def status_of(nodes: RecordedNodes) -> object:
    async def go():
        async with Fleet(load_inventory(nodes.inventory)) as fleet:
            return await read_status(fleet.connector("n").run, SPEC)
    return asyncio.run(go())


def test_read_status_finds_a_system_unit_without_root(node) -> None:
    """`saf status` reads without sudo: the system unit first, then the user's."""
    nodes = node(systemd=True, uid=1000, user="daniele", show=WIBBLE)
    set_show(nodes, GONE, args="--user " + SHOW.split(" ", 1)[1])
    seen = status_of(nodes)
    assert (seen.manager, seen.state, seen.pid) == ("systemd", "active", 3764255)
    set_show(nodes, GONE)
    set_show(nodes, AW_AFTER, args="--user " + SHOW.split(" ", 1)[1])
    seen = status_of(nodes)
    assert (seen.manager, seen.state, seen.restarts, seen.kept_across_reboots) == (
        "systemd-user", "active", 1, True)
    set_show(nodes, GONE, args="--user " + SHOW.split(" ", 1)[1])
    assert status_of(nodes).state == "absent"
