"""Third-party warnings never reach a saf user; saf's own still do (saf.library_warnings).

A release of cryptography made asyncssh print ten `CryptographyDeprecationWarning` lines on
every start of saf, on quitting the cockpit and on every `saf serve` logout. The front door
drops warnings from modules outside saf unless the user asked for warnings (`-W`,
`PYTHONWARNINGS`). The SSH session's half is in tests/test_serve_ssh.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from saf.demo.cluster import DemoCluster

SAF = str(Path(sys.executable).parent / "saf")

# A library that warns as asyncssh does with a new cryptography, and saf code that warns.
PROBE = """
import warnings, sys
from saf import library_warnings
library_warnings.keep_out()
warnings.warn_explicit("DSA is deprecated", UserWarning, "misc.py", 32,
                       module="asyncssh.crypto.misc")
warnings.warn_explicit("old style", DeprecationWarning, "x.py", 1, module="textual.widget")
warnings.warn_explicit("saf says so", UserWarning, "run.py", 7, module="saf.recipe.run")
warnings.warn_explicit("saf itself", UserWarning, "__init__.py", 3, module="saf")
warnings.warn_explicit("not saf", UserWarning, "x.py", 3, module="safari")
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    return {**env, **extra}


def _warning_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if "Warning" in line]


def test_library_warnings_are_dropped_and_safs_own_still_show():
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                          env=_env(), timeout=60)
    assert done.returncode == 0, done.stderr
    assert "DSA is deprecated" not in done.stderr
    assert "old style" not in done.stderr
    assert "not saf" not in done.stderr
    assert "saf says so" in done.stderr
    assert "saf itself" in done.stderr


def test_warnings_the_user_asked_for_are_shown():
    done = subprocess.run([sys.executable, "-W", "default", "-c", PROBE], capture_output=True,
                          text=True, env=_env(), timeout=60)
    assert "DSA is deprecated" in done.stderr
    assert "saf says so" in done.stderr


def test_saf_help_prints_no_warning_line():
    done = subprocess.run([SAF, "--help"], capture_output=True, text=True, env=_env(),
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert _warning_lines(done.stdout + done.stderr) == []
    assert "Usage: saf" in done.stdout


def test_a_headless_command_prints_no_warning_line(tmp_path: Path):
    with DemoCluster(homes=tmp_path / "homes") as demo:
        done = subprocess.run([SAF, "-i", str(demo.inventory_path), "nodes"],
                              capture_output=True, text=True, timeout=120,
                              env=_env(SAF_STATE_DIR=str(tmp_path / "state"),
                                       SAF_CONFIG_DIR=str(tmp_path / "config")))
    assert done.returncode == 0, done.stdout + done.stderr
    assert _warning_lines(done.stdout + done.stderr) == []
    assert "alpha" in done.stdout
