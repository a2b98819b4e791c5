"""The one helper the programs saf runs on a node share (saf.agents.node_common: listening
ports, a tool run with a timeout, an atomic write), and the two programs shipped with it
inlined (saf.node_source), run under the nodes' oldest Python without saf installed."""

from __future__ import annotations

import ast
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from saf.agents import node_common

from saf.inference.node import SCRIPT
from saf.node_source import program_source
from saf.ray.facts import probe_source
from tests.helpers.servers import loopback_has_ipv6

PY39 = Path("/root/.pyenv/versions/3.9.18/bin/python")
PYTHON = str(PY39) if PY39.exists() else sys.executable


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP port this test process listens on (IPv4 loopback)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_listening_names_the_process_of_each_listening_port(listener: int) -> None:
    """A listening socket is found with its owner; a port only connected to (not listened
    on) and a closed port are not listed."""
    with socket.create_connection(("127.0.0.1", listener)) as client:
        client_port = client.getsockname()[1]
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            unused = closed.getsockname()[1]
        found = node_common.listening([listener, client_port, unused])
    assert found == {listener: [os.getpid()]}
    assert node_common.listening([]) == {}


@pytest.mark.skipif(not loopback_has_ipv6(), reason="no IPv6 on loopback here")
def test_listening_reads_ipv6_sockets_too() -> None:
    with socket.socket(socket.AF_INET6) as s:
        s.bind(("::1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert node_common.listening([port]) == {port: [os.getpid()]}


@pytest.mark.skipif(shutil.which("lsof") is None, reason="no lsof here")
def test_the_lsof_way_agrees_with_proc(listener: int) -> None:
    """Where there is no /proc (macOS) lsof answers; nobody listening (lsof's exit 1) is an
    answer, not a failure."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        unused = closed.getsockname()[1]
    assert node_common._listening_lsof({listener, unused}) == {listener: [os.getpid()]}


def test_run_tool_gives_output_only_of_a_tool_that_ended_well() -> None:
    assert node_common.run_tool(["sh", "-c", "echo hi"]) == "hi\n"
    assert node_common.run_tool(["sh", "-c", "echo no; exit 3"]) is None
    assert node_common.run_tool(["sh", "-c", "echo one; exit 1"], ok=(0, 1)) == "one\n"
    assert node_common.run_tool(["no-such-tool-saf"]) is None
    assert node_common.run_tool(["sleep", "30"], timeout=0.2) is None
    # Its stdin is /dev/null: a tool that reads it ends at once instead of taking the guard's.
    assert node_common.run_tool(["cat"], timeout=10) == ""


def test_atomic_write_leaves_the_whole_file_or_none(tmp_path: Path) -> None:
    path = tmp_path / "8000.json"
    path.write_text("old")
    node_common.atomic_write(str(path), '{"port": 8000}')
    assert path.read_text() == '{"port": 8000}'
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["8000.json"]
    with pytest.raises(FileNotFoundError):
        node_common.atomic_write(str(tmp_path / "missing" / "x.json"), "x")
    with pytest.raises(TypeError):  # fails mid-write: the old file stays, no temp file left
        node_common.atomic_write(str(path), None)  # type: ignore[arg-type]
    assert path.read_text() == '{"port": 8000}'
    assert os.listdir(tmp_path) == ["8000.json"]


def test_each_shipped_program_carries_the_helper_and_no_saf_import() -> None:
    """What reaches a node is one text per call: the program with the helper in place of its
    import, and nothing else of saf."""
    for package, name in (("saf.ray", "node_probe.py"), ("saf.inference", "node_script.py")):
        text = program_source(package, name)
        tree = ast.parse(text)
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not {m for m in imported if m.split(".")[0] == "saf"}, name
        defined = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
        for helper in ("listening", "run_tool", "atomic_write"):
            assert defined.count(helper) == 1, (name, helper)
    assert SCRIPT == program_source("saf.inference", "node_script.py")


def test_the_shipped_ray_probe_reads_listeners_under_python_3_9(listener: int,
                                                                  tmp_path: Path) -> None:
    """The Ray probe as shipped, run by the nodes' oldest Python (3.9, where installed) with
    no saf to import: a port taken is named with its process; its start record is written
    whole, readable only by its owner."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run([PYTHON, "-I", "-c", probe_source(), "facts",
                           json.dumps({"ports": [listener], "temp_dir": str(tmp_path)})],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout.split("saf-ray ", 1)[1])
    assert answer["listeners"][str(listener)].startswith(f"pid {os.getpid()} (")
    if PYTHON == str(PY39):
        assert answer["python"].startswith("3.9.")
    # The helper itself under that Python: its atomic write, and a tool run with a timeout.
    record = tmp_path / "ray.json"
    driver = (program_source("saf.inference", "node_script.py").split("RECORD_VERSION =")[0]
              + "atomic_write(%r, 'whole')\n" % str(record)
              + "assert run_tool(['sleep', '30'], timeout=0.2) is None\n")
    done = subprocess.run([PYTHON, "-I", "-c", driver], capture_output=True, text=True,
                          env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert record.read_text() == "whole"
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
