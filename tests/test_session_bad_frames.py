"""The bad frames of a node's command session (saf.connect.session_frames) reach the user as
an agent's do in `saf top`: a count by reason per node, never what the lines held. A real
`saf run` on a loopback node (saf's own SSH server) whose python writes junk before the
session program starts (as a broken wrapper or a hostile node would): the run's summary
says so, and the run log's last event keeps the counts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from tests.helpers.servers import AsyncsshServers, ClientKeys, write_inventory


def test_a_sessions_bad_frames_are_counted_in_the_summary_and_the_log(tmp_path: Path) -> None:
    junk = f"JUNK-{uuid.uuid4().hex[:8]}"
    noisy = tmp_path / "noisy-python"
    noisy.write_text(f"#!/bin/sh\nprintf '%s\\n' '{junk} not json' '[1, 2]' '{junk} again'\n"
                     f'exec {sys.executable} "$@"\n')
    noisy.chmod(0o755)
    keys = ClientKeys(tmp_path / "operator")
    servers = AsyncsshServers(tmp_path, keys, ["alpha", "beta"])
    try:
        inventory = write_inventory(tmp_path / "saf.toml", keys, [
            {"name": "alpha", "host": "127.0.0.1", "port": servers.port("alpha"),
             "python": str(noisy)},
            {"name": "beta", "host": "127.0.0.1", "port": servers.port("beta")}])
        recipe = tmp_path / "hello.toml"
        recipe.write_text('name = "hello"\n\n[[steps]]\nname = "say"\nrun = "echo hi"\n')
        state = tmp_path / "state"
        env = {**os.environ, "SAF_INVENTORY": str(inventory), "SAF_STATE_DIR": str(state),
               "SAF_CONFIG_DIR": str(tmp_path / "config"), "NO_COLOR": "1", "COLUMNS": "120"}
        done = subprocess.run([sys.executable, "-m", "saf", "run", str(recipe)], env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        said = done.stdout + done.stderr
        assert "alpha: bad frames from its command session: bad_type 1, not_json 2" in said, \
            said
        assert "beta: bad frames" not in said
        assert junk not in said  # a count, never the frame's content

        logs = list(state.rglob("*.jsonl"))
        assert len(logs) == 1, logs
        last = json.loads(logs[0].read_text().splitlines()[-1])
        assert last["event"] == "run_finished"
        assert last["bad_frames"] == {"alpha": {"bad_type": 1, "not_json": 2}}
        assert junk not in logs[0].read_text()
    finally:
        servers.stop()
