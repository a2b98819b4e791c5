"""One command session per node per run (saf.connect.session, agents/command_session.py):
a recipe's commands take one SSH channel per node, on asyncssh's server and OpenSSH's sshd;
output, statuses, cancellation and the fallback stay what they are on channels of their own;
what the node program writes passes a gate that counts what it refuses and never raises.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from saf.connect.base import KEEP_BYTES, Connector, OutputCollector, RemoteProcess
from saf.connect.local import LocalConnector
from saf.connect.session import SessionConnector, _Command, start_command
from saf.connect.session_frames import Exit, Gate, Hello, Out
from saf.connect.ssh import SSHConnector
from saf.events import Event
from saf.fleet import Fleet
from saf.inventory import load_inventory
from saf.inventory.model import Node
from saf.recipe import load_recipe
from saf.recipe.events import NodeStepFinished, StepOutput
from saf.recipe.prepare import prepare
from saf.recipe.runner import Runner
from tests.helpers import procs

NODES = ["alpha", "beta", "gamma"]
PY36 = "/root/.pyenv/versions/3.6.15/bin/python"
PY27 = "/root/.pyenv/versions/2.7.18/bin/python"
HAVE_PY27 = os.path.exists(PY27)

FIVE_STEPS = """\
[[steps]]
name = "one"
run = "echo one from {node.name}"

[[steps]]
name = "two"
run = "echo two >&2; exit 0"

[[steps]]
name = "checked"
check = "false"
run = "echo three"

[[steps]]
name = "fails"
run = "echo four; exit 3"
on_failure = "continue"

[[steps]]
name = "last"
run = "printf 'no newline at the end'"
"""


class CountingSSH(SSHConnector):
    """saf's SSH connector, recording each command channel it opens (not SFTP's)."""

    opened: dict[str, list[str]] = {}

    async def _open(self, command: str, *, binary: bool = False) -> Any:
        CountingSSH.opened.setdefault(self.node.name, []).append(command)
        return await super()._open(command, binary=binary)


async def run_recipe(inventory: Path, recipe_path: Path,
                     **kwargs: Any) -> tuple[str, list[Event]]:
    events: list[Event] = []
    async with Fleet(load_inventory(inventory), **kwargs) as fleet:
        prepared = await prepare(load_recipe(recipe_path), fleet, {}, None)
        status = await Runner(prepared, fleet, events.append, run_id="test").run()
    return status, events


async def test_a_run_takes_one_channel_per_node(cluster, tmp_path: Path) -> None:
    """Five steps, five commands per node: one SSH channel each node, and the same output,
    statuses and exit status as channels of their own gave."""
    recipe = tmp_path / "five.toml"
    recipe.write_text(FIVE_STEPS)
    CountingSSH.opened = {}
    status, events = await run_recipe(cluster.inventory, recipe, connector_factory=CountingSSH)
    assert status == "ok"
    assert {node: len(opened) for node, opened in CountingSSH.opened.items()} == \
        dict.fromkeys(NODES, 1)
    assert all("saf_command_session" in opened[0] for opened in CountingSSH.opened.values())
    finished = [e for e in events if isinstance(e, NodeStepFinished) and e.node == "beta"]
    assert [(e.step, e.status, e.exit_status) for e in finished] == [
        (0, "changed", 0), (1, "changed", 0), (2, "changed", 0), (3, "failed", 3),
        (4, "changed", 0)]
    lines = [(e.step, e.stream, e.line) for e in events
             if isinstance(e, StepOutput) and e.node == "beta"]
    assert lines == [(0, "stdout", "one from beta"), (1, "stderr", "two"),
                     (2, "stdout", "three"), (3, "stdout", "four"),
                     (4, "stdout", "no newline at the end")]


def _node(python: str = "python3") -> Node:
    return Node(name="here", host="localhost", connection="local", python=python)


async def test_output_statuses_and_long_lines(tmp_path: Path) -> None:
    """What a command says comes back line by line, whatever its size or encoding: a line
    longer than a frame's part is one line, a character cut between parts is whole."""
    conn = SessionConnector(LocalConnector(_node()))
    try:
        result = await conn.run("echo out; echo err >&2; exit 7")
        assert (result.exit_status, result.stdout, result.stderr) == (7, "out\n", "err\n")
        # 300,000 'é' (600,000 bytes): split into 256 KiB parts, one cut inside a character.
        long = await conn.run("python3 -c 'import sys; sys.stdout.write(\"\\u00e9\" * 300000)'"
                              "; echo; echo after")
        assert long.stdout == "é" * 300000 + "\nafter\n"
        killed = await conn.run("kill -KILL $$")
        assert killed.exit_status == 137  # as sh reports it
        assert killed.signal is None  # as sh reports it
        many = await asyncio.gather(*(conn.run(f"sleep 0.0{i}; echo {i}") for i in range(8)))
        assert [r.stdout for r in many] == [f"{i}\n" for i in range(8)]
        assert conn.bad_frames == 0
    finally:
        await conn.close()


async def test_cancel_and_timeout_stop_the_process_group(tmp_path: Path, sleep_tag: str) -> None:
    """A timed-out command is stopped with its children (its process group); the session
    goes on serving the next command."""
    conn = SessionConnector(LocalConnector(_node()))
    try:
        result = await conn.run(f"sleep {sleep_tag} & sleep {sleep_tag}; echo never",
                                timeout=1.0)
        assert (result.timed_out, result.stdout) == (True, "")
        left = await _wait_gone(sleep_tag)
        assert left == [], left
        assert (await conn.run("echo still here")).stdout == "still here\n"
    finally:
        await conn.close()


async def test_closing_the_session_stops_what_it_runs(tmp_path: Path, sleep_tag: str) -> None:
    """The end of the session's stdin (saf done, Ctrl-C, a dropped connection) stops every
    command it still runs, as closing a guarded channel does."""
    conn = SessionConnector(LocalConnector(_node()))
    try:
        running = asyncio.ensure_future(conn.run(f"sleep {sleep_tag}"))
        for _ in range(200):  # until the node runs it
            if procs.sleepers(sleep_tag):
                break
            await asyncio.sleep(0.05)
    finally:
        await conn.close()
    # The command ends (TERM'd, its status read) or is lost with the session: either way...
    await asyncio.gather(running, return_exceptions=True)
    assert await _wait_gone(sleep_tag) == []


async def _wait_gone(tag: str) -> list[str]:
    for _ in range(100):
        left = procs.describe(procs.sleepers(tag))
        if not left:
            return []
        await asyncio.sleep(0.1)
    return left


def no_python3(command: str) -> str:
    """The session's start command on a node with no python3 on its PATH."""
    assert command.startswith("exec sh -c ")
    return command.replace("exec sh -c ", "PATH=/nonexistent exec /bin/sh -c ", 1)


class _NoPython3(LocalConnector):
    async def start(self, command: str, *, stdin: bool = True) -> RemoteProcess:
        return await super().start(no_python3(command), stdin=stdin)


class _NoPython3SSH(SSHConnector):
    async def start(self, command: str, *, stdin: bool = True) -> RemoteProcess:
        return await super().start(no_python3(command), stdin=stdin)


@pytest.mark.parametrize("python", ["no-such-python3", PY27])
async def test_a_python_that_cannot_serve_falls_back_once(python: str, tmp_path: Path) -> None:
    """No python, or one too old, and no python3 either: the node's commands each take a
    channel, as before, and saf says why once."""
    if python == PY27 and not HAVE_PY27:
        pytest.skip(f"no {python}")
    said: list[str] = []
    conn = SessionConnector(_NoPython3(_node(python)), on_fallback=said.append)
    try:
        first = await conn.run("echo a")
        second = await conn.run("echo b; exit 4")
    finally:
        await conn.close()
    assert (first.stdout, second.stdout, second.exit_status) == ("a\n", "b\n", 4)
    assert len(said) == 1
    assert said[0].startswith(f"neither {python} nor python3 on here can run saf's command "
                              "session (")
    assert "not found" in said[0]  # python3, tried second


@pytest.mark.parametrize("python", ["no-such-python3", PY27])
async def test_python3_serves_where_the_inventorys_python_cannot(python: str) -> None:
    """The inventory's python missing (a venv not made yet) or too old: python3 runs the
    session, which needs only the standard library; nothing to say."""
    if python == PY27 and not HAVE_PY27:
        pytest.skip(f"no {python}")
    said: list[str] = []
    conn = SessionConnector(LocalConnector(_node(python)), on_fallback=said.append)
    try:
        result = await conn.run("echo served")
        assert conn._session is not None
        assert conn._session.alive
    finally:
        await conn.close()
    assert (said, result.stdout) == ([], "served\n")


async def test_fallback_is_said_once_per_node_in_a_run(asyncssh_cluster, tmp_path: Path) -> None:
    """A recipe on nodes with no python that can serve still runs every step, each node's
    output saying once why its commands took channels of their own."""
    inventory = tmp_path / "saf.toml"
    inventory.write_text(asyncssh_cluster.inventory.read_text().replace(
        'python = "', 'python = "/nonexistent', 1))
    recipe = tmp_path / "five.toml"
    recipe.write_text(FIVE_STEPS)
    status, events = await run_recipe(inventory, recipe, connector_factory=_NoPython3SSH)
    assert status == "ok"
    notes = [e for e in events if isinstance(e, StepOutput) and e.line.startswith("saf: ")]
    assert sorted(e.node for e in notes) == NODES
    assert all(e.stream == "stderr" and e.step == 0 for e in notes)
    assert [e.line for e in events if isinstance(e, StepOutput) and e.node == "alpha"
            and e.step == 0 and not e.line.startswith("saf: ")] == ["one from alpha"]


@pytest.mark.skipif(not os.path.exists(PY36), reason=f"no Python 3.6 at {PY36}")
async def test_the_program_runs_on_python_3_6() -> None:
    """The oldest python the session serves on (older ones are refused before the hello)."""
    said: list[str] = []
    conn = SessionConnector(LocalConnector(_node(PY36)), on_fallback=said.append)
    try:
        result = await conn.run("echo on 3.6; exit 2")
    finally:
        await conn.close()
    assert (said, result.stdout, result.exit_status) == ([], "on 3.6\n", 2)


class _Noisy(LocalConnector):
    """A node whose session program is preceded by junk on its stdout: a broken shell
    profile, or a hostile node."""

    JUNK = ("not json\\n{\\\"t\\\": \\\"out\\\", \\\"id\\\": -1, \\\"s\\\": \\\"o\\\", "
            "\\\"d\\\": \\\"x\\\"}\\n{\\\"t\\\": \\\"exit\\\", \\\"id\\\": 1, \\\"rc\\\": 999}\\n"
            "[1, 2]\\n")

    async def start(self, command: str, *, stdin: bool = True) -> RemoteProcess:
        return await super().start(f'printf "{self.JUNK}"; {command}', stdin=stdin)


class _Huge(LocalConnector):
    """A node that writes a 5 MB line before the session program starts."""

    async def start(self, command: str, *, stdin: bool = True) -> RemoteProcess:
        return await super().start(
            f"head -c 5000000 /dev/zero | tr '\\0' x; echo; {command}", stdin=stdin)


async def test_a_line_past_the_frame_limit_is_counted_and_skipped() -> None:
    """A line longer than MAX_FRAME is never held whole: counted as too_long, skipped to its
    end, and the frames after it are read as usual."""
    conn = SessionConnector(_Huge(_node()))
    try:
        result = await conn.run("echo fine")
        assert (result.exit_status, result.stdout) == (0, "fine\n")
        assert conn._session is not None
        assert conn._session.gate.bad == {"too_long": 1}
    finally:
        await conn.close()


async def test_bad_frames_are_counted_and_never_break_the_session() -> None:
    """Lines that are no frame of the session's are counted by reason and dropped; an exit
    status out of range does not end command 1, which then runs as any other."""
    conn = SessionConnector(_Noisy(_node()))
    try:
        result = await conn.run("echo fine")
        assert (result.exit_status, result.stdout) == (0, "fine\n")
        assert conn.bad_frames == 4
    finally:
        await conn.close()


@given(st.one_of(st.text(max_size=200), st.binary(max_size=200).map(
    lambda b: b.decode("latin-1")), st.builds(
        lambda t, i, rc: f'{{"t":"{t}","id":{i},"rc":{rc},"s":"o","d":"","v":1,"pid":1}}',
        st.sampled_from(["hello", "out", "exit", "other"]), st.integers(), st.integers())))
@settings(max_examples=300, deadline=None)
def test_the_gate_never_raises(line: str) -> None:
    """Whatever a node writes, the gate gives a frame or None, and counts every None."""
    gate = Gate()
    frame = gate.read(line)
    assert frame is None or isinstance(frame, Hello | Out | Exit)
    assert gate.bad_total == (frame is None)


def test_the_start_command_reads_the_same_in_any_login_shell() -> None:
    """The program travels compressed and the script runs under sh: no backslash for fish to
    read inside its single quotes; `exec`, so the session's stdin is the channel's."""
    command = start_command("~/venv/bin/python")
    assert command.startswith("exec sh -c '")
    assert "\\" not in command
    assert "saf_command_session" in command
    assert len(command) < 8 * 1024


async def test_password_input_keeps_its_own_channel(tmp_path: Path) -> None:
    """A command given stdin (sudo's password) runs on its own channel: a secret never
    enters the session's stream."""

    class Recording(LocalConnector):
        runs: list[str] = []

        async def _run(self, command: str, out: Any, err: Any, input: str | None) -> Any:
            Recording.runs.append(command)
            return await super()._run(command, out, err, input)

    conn: Connector = SessionConnector(Recording(_node()))
    try:
        plain = await conn.run("echo via session")
        fed = await conn.run("cat", input="s3cret")
    finally:
        await conn.close()
    assert (plain.stdout, fed.stdout) == ("via session\n", "s3cret\n")
    assert Recording.runs == ["cat"]


async def test_a_line_that_never_ends_is_cut_at_what_a_stream_keeps() -> None:
    """Parts marked `more` forever (a hostile node) are joined only up to KEEP_BYTES: then
    they are a line of their own, and saf's memory stays bounded."""
    lines: list[int] = []
    out = OutputCollector("stdout", lambda stream, line: lines.append(len(line)))
    command = _Command(out, OutputCollector("stderr", None))
    part = "x" * (64 * 1024)
    for _ in range(100):  # 6.4 MiB, never a last part
        command.add(Out(id=1, s="o", d=part, more=True))
    assert lines == [KEEP_BYTES]
    assert command.sizes["o"] == 100 * len(part) - KEEP_BYTES
    command.flush()
    assert lines == [KEEP_BYTES, 100 * len(part) - KEEP_BYTES]
