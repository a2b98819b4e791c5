"""`saf up`'s plan and its apply run through one command session per node: the session
program is a python started on the node (0.1-0.2 s before its first command), so one start
per node instead of one per run. Proven on a real loopback node by the parent pid each of
the step's shells sees: the session program that started it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import tomli_w

from tests.helpers.servers import AsyncsshServers, ClientKeys, write_inventory

# Its check fails (so the plan says `would change`), and runs again in the apply before the
# command: each notes its shell's parent.
NOTE = """name = "note"
description = "note which program runs the shells"
[[steps]]
name = "note the parent"
check = 'echo "$PPID" >> "$HOME"/parents; false'
run = 'echo "$PPID" >> "$HOME"/parents'
"""


def test_plan_and_apply_run_through_one_session_per_node(tmp_path: Path) -> None:
    keys = ClientKeys(tmp_path / "operator")
    servers = AsyncsshServers(tmp_path, keys, ["solo"])
    try:
        (tmp_path / "note.toml").write_text(NOTE)
        inventory = write_inventory(tmp_path / "saf.toml", keys, [
            {"name": "solo", "host": "127.0.0.1", "port": servers.port("solo")}])
        with inventory.open("a") as f:
            f.write("\n" + tomli_w.dumps({"up": {"steps": [{"recipe": "note.toml"}]}}))
        env = {**os.environ, "SAF_INVENTORY": str(inventory),
               "SAF_STATE_DIR": str(tmp_path / "state"), "NO_COLOR": "1"}
        done = subprocess.run([sys.executable, "-m", "saf", "up"], env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "would change" in done.stdout  # the plan ran the check first
        parents = (servers.home("solo") / "parents").read_text().split()
        # The plan's check, then the apply's check and command: all from one program.
        assert len(parents) == 3, parents
        assert len(set(parents)) == 1, parents
    finally:
        servers.stop()
