"""Hostile YAML given to `saf import ray` (issue 22, item 15: an alias bomb ended in a
MemoryError traceback after 25 s, the message formatting the expanded list with `!r`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from saf.errors import BRIEF_CHARS, ConfigError, brief
from saf.inventory.importers import import_ray
from saf.inventory.importers.bounded_yaml import MAX_VALUES

ROOT = Path(__file__).resolve().parents[1]


def bomb(levels: int, width: int = 10) -> str:
    """Each level a list of `width` aliases of the one before: width**levels values."""
    lines = ["l0: &l0 [" + ", ".join(["lol"] * width) + "]"]
    for n in range(1, levels):
        lines.append(f"l{n}: &l{n} [" + ", ".join([f"*l{n - 1}"] * width) + "]")
    lines += ["cluster_name: boom", "provider:", "  type: local", "  head_ip: 10.0.0.1",
              f"  worker_ips: [*l{levels - 1}]"]
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_with_a_short_message(tmp_path: Path) -> None:
    # 10**7 values written out: cheap to load, tens of MB as a repr (the message before).
    path = tmp_path / "cluster.yaml"
    path.write_text(bomb(7))
    env = {k: v for k, v in os.environ.items() if k != "SAF_INVENTORY"}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run([sys.executable, "-m", "saf", "import", "ray", str(path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr, done.stderr[:2000]
    assert len(done.stderr) < 2000, done.stderr[:2000]
    assert f"aliases expand to more than {MAX_VALUES:,} values" in done.stderr
    assert str(path) in done.stderr
    assert not (tmp_path / "saf.toml").exists()


def test_a_recursive_alias_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cluster.yaml"
    path.write_text("loop: &a [1, *a]\nprovider: {type: local, head_ip: 10.0.0.1}\n")
    with pytest.raises(ConfigError, match="alias bomb"):
        import_ray(path)


def test_a_large_value_is_quoted_short(tmp_path: Path) -> None:
    """No aliases, just a big value where an address belongs: the message quotes its start."""
    path = tmp_path / "cluster.yaml"
    path.write_text("provider:\n  type: local\n  head_ip: 10.0.0.1\n  worker_ips:\n    - ["
                    + ", ".join(["x" * 100] * 5000) + "]\n")
    with pytest.raises(ConfigError) as caught:
        import_ray(path)
    assert "worker_ips entry 1 is not an address: ['xxx" in str(caught.value)
    assert len(caught.value.detail) < 200


def test_brief_bounds_any_value() -> None:
    nested: list = ["lol"] * 10
    for _ in range(30):
        nested = [nested] * 10  # 10**31 values written out: brief must not walk them
    assert len(brief(nested)) <= BRIEF_CHARS
    assert "..." in brief("a" * 10_000)
    assert len(brief("a" * 10_000)) <= BRIEF_CHARS
    assert brief({"type": "local"}) == "{'type': 'local'}"
