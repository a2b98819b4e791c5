"""A node whose Python is older than the agent's (3.9) is refused with the fix, not a traceback:
by the agent link (the cockpit's and the hub's `lost` reason) and by `saf nodes`.

No Python older than 3.11 is installed here, so the node's `python` is a stand-in for 3.8:
this machine's interpreter reporting 3.8.10, whose import of the agent's protocol module fails
as 3.8's does (its TypedDicts subscript `dict`, which 3.8 cannot do at run time).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import subprocess
import sys
from pathlib import Path

from saf.agentlink.build import build
from saf.agentlink.link import AgentLink
from saf.connect.ssh import SSHConnector
from saf.inventory import load_inventory
from saf.metrics import events as mev
from tests.helpers.servers import write_inventory

PYTHON_38 = f"""#!{sys.executable}
import sys

if sys.argv[1:2] == ["-c"]:  # what saf nodes asks: platform.python_version()
    print("3.8.10")
    sys.exit(0)


class Python38:
    \"\"\"3.8 fails importing the agent's protocol module: `dict[str, ...]` in a class body.\"\"\"

    def find_spec(self, name, path=None, target=None):
        if name == "agents.protocol":
            raise TypeError("'type' object is not subscriptable")
        return None


sys.version_info = (3, 8, 10, "final", 0)
sys.version = "3.8.10 (default, Nov 22 2023, 10:22:35) [GCC 9.4.0]"
sys.meta_path.insert(0, Python38())
import runpy

sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def old_python(folder: Path) -> Path:
    path = folder / "python3.8"
    path.write_text(PYTHON_38)
    path.chmod(0o755)
    return path


async def test_the_agent_link_names_the_old_python_and_the_fix(asyncssh_cluster,
                                                               tmp_path: Path) -> None:
    node = dataclasses.replace(load_inventory(asyncssh_cluster.inventory).node("alpha"),
                               python=str(old_python(tmp_path)))
    lost: list[mev.AgentStatus] = []
    seen = asyncio.Event()

    def emit(event: mev.Event) -> None:
        if isinstance(event, mev.AgentStatus) and event.status == mev.NodeStatus.LOST:
            lost.append(event)
            seen.set()

    link = AgentLink(SSHConnector(node), build(cache=tmp_path), emit)
    task = asyncio.create_task(link.run())
    try:
        await asyncio.wait_for(seen.wait(), 60)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await link.conn.close()
    first = lost[0]
    assert first.reason == "python", first.message
    assert first.message.startswith(
        "Python 3.8.10 is too old for the saf agent (it needs 3.9 or newer): ")
    assert "`saf run python-match --on alpha`" in first.message
    assert "Traceback" not in first.message
    assert "TypeError" not in first.message


def test_saf_nodes_marks_the_old_python_with_the_fix(asyncssh_cluster, tmp_path: Path) -> None:
    nodes = [{"name": name, "host": "127.0.0.1", "port": port}
             for name, port in asyncssh_cluster.ports.items() if name == "alpha"]
    inv = write_inventory(tmp_path / "saf.toml", asyncssh_cluster.keys, nodes,
                          python=str(old_python(tmp_path)))
    done = subprocess.run([sys.executable, "-m", "saf", "-i", str(inv), "nodes"],
                          capture_output=True, text=True, timeout=120,
                          env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert "3.8.10 (too old)" in done.stdout
    assert ("alpha: Python 3.8.10 is too old for the saf agent: `saf run python-match --on "
            "alpha` installs a newer one") in " ".join(done.stdout.split())
