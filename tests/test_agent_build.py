"""The agent's zipapp in saf's cache is whole whoever else builds it at the same moment.

Two saf processes on the operator's machine (a `saf serve` and a `saf top`, or two test runs)
build the same `agent-<hash>.pyz`; with one shared temporary name, one truncated the file the
other had just renamed into place, and a node was sent a zipapp of NUL bytes (`SyntaxError:
source code cannot contain null bytes` on the fresh-clone CI run).
"""

from __future__ import annotations

import hashlib
import multiprocessing
import shutil
from pathlib import Path

import saf.agents

import saf.agentlink.build as building
from saf.agentlink.build import build

ROUNDS = 40


def _build_and_check(cache: str) -> list[str]:
    """Each round is a first build: the cached file is removed, so every process writes."""
    bad = []
    for _ in range(ROUNDS):
        for old in (Path(cache) / "agents").glob("agent-*.pyz"):
            old.unlink(missing_ok=True)
        bundle = build(cache=Path(cache))
        try:
            data = bundle.path.read_bytes()
        except FileNotFoundError:
            continue  # another process's round removed it: not what is tested here
        if hashlib.sha256(data).hexdigest() != bundle.sha256:
            bad.append(f"{len(data)} bytes, {data.count(0)} NULs")
    return bad


def test_builds_at_the_same_moment_leave_a_whole_zipapp(tmp_path: Path) -> None:
    with multiprocessing.get_context("fork").Pool(4) as pool:
        results = pool.map(_build_and_check, [str(tmp_path)] * 4)
    assert [bad for bad in results if bad] == []
    assert sorted(p.name for p in (tmp_path / "agents").iterdir()) == [build(
        cache=tmp_path).name]  # no temporary file left behind


def test_a_build_is_remembered_until_its_sources_change(tmp_path: Path, monkeypatch) -> None:
    """The bundle is asked for before every agent command's first connection: a second build
    of the same sources is the first one again without zipping them, and any change to a
    source (or a zipapp gone or damaged) builds anew, as before."""
    source = tmp_path / "agents"
    shutil.copytree(Path(saf.agents.__file__).parent, source,
                    ignore=shutil.ignore_patterns("__pycache__"))
    cache = tmp_path / "cache"
    first = build(cache=cache, source=source)

    def no_zipping(root: Path | None = None) -> bytes:
        raise AssertionError("zipped again")

    with monkeypatch.context() as patched:
        patched.setattr(building, "zip_bytes", no_zipping)
        assert build(cache=cache, source=source) == first

    (source / "main.py").write_text((source / "main.py").read_text() + "# changed\n")
    changed = build(cache=cache, source=source)
    assert changed.digest != first.digest
    assert changed.sha256 == hashlib.sha256(building.zip_bytes(source)).hexdigest()

    changed.path.write_bytes(b"damaged")
    again = build(cache=cache, source=source)
    assert again == changed
    assert hashlib.sha256(again.path.read_bytes()).hexdigest() == again.sha256
