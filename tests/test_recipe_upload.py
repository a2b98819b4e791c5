"""kind = "upload" on both SSH servers, both ways a changed file goes: rsync's delta over saf's
connection (both ends have rsync) and SFTP (made to happen by hiding local rsync).

"Not sent" is proven by the file's inode: both ways write a temporary file and rename it into
place, so a file that was sent has a new inode and one that was not keeps its own.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

import saf.recipe.kinds.upload as upload_kind
from saf.connect.rsync import local_rsync
from tests.helpers.procs import descendants_matching
from tests.test_recipe_run import run_recipe

ODD = "dir 'q' \"x\" $(no)"  # spaces, both quotes, a would-be command substitution


@pytest.fixture(params=["rsync", "sftp"])
def transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "rsync":
        if local_rsync() is None:
            pytest.skip("rsync is not installed (apt-get install rsync)")
    else:
        monkeypatch.setattr(upload_kind, "local_rsync", lambda: None)
    return request.param


def toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def setup(tmp_path: Path) -> tuple[Path, Path, Path]:
    source = tmp_path / f"payload {ODD}"
    (source / "sub").mkdir(parents=True)
    (source / "same.txt").write_text("unchanged\n")
    (source / "change.txt").write_text("first\n")
    (source / "sub" / f"name {ODD}.txt").write_text("odd\n")
    (source / "change.txt").chmod(0o640)
    scratch = tmp_path / "nodes"
    recipe = tmp_path / "upload.toml"
    recipe.write_text(f"""name = "upload-test"
[vars]
dir = {toml_str(str(scratch))}

[[steps]]
name = "folder"
kind = "upload"
src = {toml_str(source.name)}
dest = {toml_str("{dir}/{node.name}/dest " + ODD)}

[[steps]]
name = "one file, new parents"
kind = "upload"
src = {toml_str(source.name + "/same.txt")}
dest = "{{dir}}/{{node.name}}/new/deeper/"
mode = "0600"
""")
    return recipe, source, scratch


def inodes(folder: Path) -> dict[str, int]:
    return {p.relative_to(folder).as_posix(): p.stat().st_ino
            for p in folder.rglob("*") if p.is_file()}


async def test_upload_sends_only_what_changed(cluster, transport: str, tmp_path: Path) -> None:
    recipe, source, scratch = setup(tmp_path)
    how = "1 with rsync" if transport == "rsync" else "1 over SFTP"
    first = await run_recipe(cluster, recipe)
    assert first.status == "ok"
    assert first.statuses(0) == dict.fromkeys(["alpha", "beta", "gamma"], "changed")
    # Nothing there yet: no delta to make, so new files go whole over SFTP either way.
    assert first.results(0)["alpha"].message == "sent 3 files: 3 over SFTP"
    dest = scratch / "alpha" / f"dest {ODD}"
    assert (dest / "sub" / f"name {ODD}.txt").read_text() == "odd\n"
    assert (dest / "change.txt").stat().st_mode & 0o777 == 0o640  # kept from the source
    single = scratch / "gamma" / "new" / "deeper" / "same.txt"
    assert single.read_text() == "unchanged\n"
    assert single.stat().st_mode & 0o777 == 0o600
    before = inodes(dest)

    again = await run_recipe(cluster, recipe)
    assert again.statuses(0) == again.statuses(1) == dict.fromkeys(
        ["alpha", "beta", "gamma"], "skipped")
    assert "up to date (3 files)" in again.results(0)["alpha"].message
    assert inodes(dest) == before

    (source / "change.txt").write_text("second\n")
    check = await run_recipe(cluster, recipe, check=True)
    result = check.results(0)["alpha"]
    assert result.status == "changed"
    assert "would send 1 of 3 files" in result.message
    assert "change.txt" in result.message
    assert (dest / "change.txt").read_text() == "first\n"  # --check changed nothing
    assert inodes(dest) == before

    third = await run_recipe(cluster, recipe)
    assert third.results(0)["alpha"].message.startswith(f"sent 1 files: {how}")
    assert (dest / "change.txt").read_text() == "second\n"
    assert (dest / "change.txt").stat().st_mode & 0o777 == 0o640
    after = inodes(dest)
    assert after["change.txt"] != before["change.txt"]
    assert {k: v for k, v in after.items() if k != "change.txt"} == \
        {k: v for k, v in before.items() if k != "change.txt"}
    assert third.statuses(1) == dict.fromkeys(["alpha", "beta", "gamma"], "skipped")
    assert descendants_matching("rsync_shim|rsync --server") == []


async def test_rsync_sends_only_the_changed_part_of_a_file(cluster, tmp_path: Path) -> None:
    """An 8 MiB file with 4 KiB changed in the middle: rsync's delta puts a small fraction of
    the file on the wire."""
    if local_rsync() is None:
        pytest.skip("rsync is not installed (apt-get install rsync)")
    big = tmp_path / "big.bin"
    data = bytearray(os.urandom(8 << 20))
    big.write_bytes(data)
    recipe = tmp_path / "big.toml"
    recipe.write_text(f"""[[steps]]
name = "big"
on = "alpha"
kind = "upload"
src = "big.bin"
dest = "{tmp_path}/remote/big.bin"
""")
    assert (await run_recipe(cluster, recipe)).status == "ok"
    data[4 << 20:(4 << 20) + 4096] = os.urandom(4096)
    big.write_bytes(data)
    second = await run_recipe(cluster, recipe)
    message = second.results(0)["alpha"].message
    wire = int(re.search(r"\((\d+) bytes on the wire\)", message).group(1))  # type: ignore
    assert wire < 512 * 1024, message
    assert (tmp_path / "remote" / "big.bin").read_bytes() == bytes(data)


async def test_relative_dest_is_in_the_home_folder(asyncssh_cluster, tmp_path: Path) -> None:
    """A relative `dest` lands in the login folder by SFTP and by rsync alike."""
    if local_rsync() is None:
        pytest.skip("rsync is not installed (apt-get install rsync)")
    (tmp_path / "conf.txt").write_text("one\n")
    recipe = tmp_path / "rel.toml"
    dest = f"saf-rel-{os.getpid()} {ODD}/conf.txt"
    recipe.write_text(f'[[steps]]\nname = "rel"\non = "alpha"\nkind = "upload"\n'
                      f'src = "conf.txt"\ndest = {toml_str(dest)}\n')
    landed = asyncssh_cluster.inventory.parent / "homes" / "alpha" / dest
    first = await run_recipe(asyncssh_cluster, recipe)
    assert first.results(0)["alpha"].message == "sent 1 files: 1 over SFTP"
    assert landed.read_text() == "one\n"
    (tmp_path / "conf.txt").write_text("two\n")
    second = await run_recipe(asyncssh_cluster, recipe)
    assert second.results(0)["alpha"].message.startswith("sent 1 files: 1 with rsync")
    assert landed.read_text() == "two\n"
