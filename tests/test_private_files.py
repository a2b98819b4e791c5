"""What saf keeps about a cluster (run logs, recordings) is readable by its owner alone."""

from __future__ import annotations

import os
from pathlib import Path

from saf.recipe.log import RunLog
from saf.recording import RecordingWriter


def test_run_log_folder_is_0700_even_when_it_existed_open(tmp_path: Path) -> None:
    runs = tmp_path / "state" / "runs"
    runs.mkdir(parents=True, mode=0o755)
    os.chmod(runs, 0o755)
    log = RunLog.create("r1", runs)
    log.write({"type": "x"})
    assert runs.stat().st_mode & 0o777 == 0o700
    assert log.path.stat().st_mode & 0o777 == 0o600


def test_cockpit_recording_is_0600_whatever_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "old.jsonl"
    path.write_text("someone else's copy")
    os.chmod(path, 0o644)
    old = os.umask(0)
    try:
        writer = RecordingWriter(path, [], cluster="lab")
        writer.close()
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o600
    assert "someone else's copy" not in path.read_text()
