"""`saf up`'s plan, on a real loopback node: it and the apply run through one command
session per node (the session program is a python started on the node, 0.1-0.2 s before its
first command: one start per node instead of one per run), proven by the parent pid each of
the step's shells sees; and every part's plan starts at once (a plan changes nothing, so
none waits for another), each said in its turn, proven by a check that passes only once a
later step's check has run."""

from __future__ import annotations

import json
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


# The first step's check passes only once the second step's check has left its marker (it
# gives up after 10 s): run one after the other, the plan says the first would change.
ONE_AT_A_TIME = """name = "ahead"
description = "a check that needs a later one"
[[steps]]
name = "waits for the second"
check = '''i=0; while [ $i -lt 100 ]; do
  [ -e "$HOME"/second ] && exit 0; sleep 0.1; i=$((i+1))
done; exit 1'''
run = 'true'
[[steps]]
name = "leaves the marker"
check = 'touch "$HOME"/second; false'
run = 'true'
"""


def _up(tmp_path: Path, servers: AsyncsshServers, keys: ClientKeys, recipe: str,
        *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "part.toml").write_text(recipe)
    inventory = write_inventory(tmp_path / "saf.toml", keys, [
        {"name": "solo", "host": "127.0.0.1", "port": servers.port("solo")}])
    with inventory.open("a") as f:
        f.write("\n" + tomli_w.dumps({"up": {"steps": [{"recipe": "part.toml"}]}}))
    env = {**os.environ, "SAF_INVENTORY": str(inventory),
           "SAF_STATE_DIR": str(tmp_path / "state"), "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "saf", "up", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_plan_and_apply_run_through_one_session_per_node(tmp_path: Path) -> None:
    keys = ClientKeys(tmp_path / "operator")
    servers = AsyncsshServers(tmp_path, keys, ["solo"])
    try:
        done = _up(tmp_path, servers, keys, NOTE)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "would change" in done.stdout  # the plan ran the check first
        parents = (servers.home("solo") / "parents").read_text().split()
        # The plan's check, then the apply's check and command: all from one program.
        assert len(parents) == 3, parents
        assert len(set(parents)) == 1, parents
    finally:
        servers.stop()


def test_every_plan_starts_at_once_and_is_said_in_turn(tmp_path: Path) -> None:
    keys = ClientKeys(tmp_path / "operator")
    servers = AsyncsshServers(tmp_path, keys, ["solo"])
    try:
        done = _up(tmp_path, servers, keys, ONE_AT_A_TIME, "--check")
        assert done.returncode == 2, done.stdout + done.stderr  # something would change
        plan = done.stdout
        assert "leaves the marker: would change" in plan, plan
        assert "waits for the second" not in plan, plan  # its check passed
        # The plan's run log: its steps in order, as a run one step after another says them.
        logs = list((tmp_path / "state" / "runs").glob("*.jsonl"))
        assert len(logs) == 1, logs
        events = [json.loads(line) for line in logs[0].read_text().splitlines()]
        steps = [e["step"] for e in events if e["event"] in (
            "step_started", "node_step_started", "node_step_finished", "step_finished")]
        assert steps == [0, 0, 0, 0, 1, 1, 1, 1], steps
        finished = [e for e in events if e["event"] == "node_step_finished"]
        assert [e["status"] for e in finished] == ["skipped", "changed"], finished
    finally:
        servers.stop()
