"""kind = "upload": copy a local file or folder to the node, sending only what changed.

`src` is relative to the recipe's folder, then to the working directory. `dest` is a path on
the node (relative paths and ~/ are in the user's home); a `dest` ending in "/" receives a file
under its own name. A folder's contents go into `dest`.

The facts are the SHA-256 of every file already at `dest`, gathered by one command that also
says whether the node has rsync; only files whose hash differs are sent. A file the node does
not have yet goes whole over SFTP (there is nothing for a delta to start from). A file the node
has in an older version goes by rsync's delta transfer when both ends have rsync, so only its
changed parts travel, over saf's own SSH connection (saf.connect.rsync); otherwise over SFTP.
Either way a file is written under a temporary name and renamed into place.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from msgspec import Meta

from saf.connect.rsync import local_rsync
from saf.connect.rsync import remote as rsync_remote
from saf.format import fmt_some
from saf.recipe.events import StepStatus
from saf.recipe.kinds.base import Fail, Kind, KindParams, Outcome, Plan, StepContext
from saf.recipe.schema import Text
from saf.recipe.substitute import names_in, shell_path
from saf.shell import SHA256
from saf.shell import join as shell_join

_hash_cache: dict[tuple[str, int, int], str] = {}


def file_hash(path: Path) -> str:
    """SHA-256 of a local file; cached by (path, size, mtime) since every node asks."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _hash_cache:
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _hash_cache[key] = digest.hexdigest()
    return _hash_cache[key]


def resolve_source(src: str, folder: Path | None) -> Path | None:
    for base in ([folder] if folder else []) + [Path.cwd()]:
        candidate = (base / os.path.expanduser(src))
        if candidate.exists():
            return candidate
    return None


def remote_path(dest: str) -> str:
    """A path for SFTP: absolute, or under the home folder written as ~/..."""
    if dest.startswith("/") or dest.startswith("~/"):
        return dest
    return "~/" + dest.removeprefix("./")


_ESCAPES = {"n": "\n", "r": "\r", "\\": "\\"}


def hash_lines(lines: list[str]) -> list[tuple[str, str]]:
    """(digest, name) from sha256sum/shasum output. A name holding a line break or a
    backslash is printed escaped, the line starting with a backslash (`\\HASH  a\\nb`):
    read that way, a file whose name has a newline matches its local twin on a rerun."""
    out = []
    for line in lines:
        escaped = line.startswith("\\")
        digest, _, name = line[escaped:].partition("  ")
        if not name:
            continue
        if escaped:
            name = re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), name)
        out.append((digest, name))
    return out


@dataclass
class _Transfer:
    files: list[tuple[Path, str, str]]  # (local file, relative name, remote path)
    delta: set[str]  # relative names to send by rsync: the node has an older copy
    source: Path
    dest: str


_RSYNC = "saf-upload-rsync"  # the facts command's first line when the node has rsync


def _shown(names: list[str]) -> str:
    return fmt_some([n or "(the file)" for n in names], 3)


class UploadParams(KindParams):
    src: Text  # a local file or folder (relative to the recipe's folder, then the cwd)
    dest: Text  # where it goes on the node
    # File permissions, e.g. "0644" (default: kept from the source); read as octal by parse.
    mode: Annotated[str | Annotated[int, Meta(ge=0, le=0o7777)],
                    Meta(description='octal like "0644"')] | None = None


class Upload(Kind[_Transfer]):
    name = "upload"
    forms = {"src": "path", "dest": "path"}
    Params = UploadParams
    supports_become = False

    def __init__(self, src: str, dest: str, mode: int | None) -> None:
        self.src = src
        self.dest = dest
        self.mode = mode

    @classmethod
    def parse(cls, params: UploadParams, fail: Fail) -> Upload:
        mode = params.mode
        if isinstance(mode, str):
            try:
                mode = int(mode, 8)
            except ValueError:
                mode = -1
            if not 0 <= mode <= 0o7777:
                raise fail("mode", f"'mode' must be octal like \"0644\", not {params.mode!r}")
        return cls(params.src, params.dest, mode)

    def templates(self) -> list[tuple[str, str]]:
        return [("src", self.src), ("dest", self.dest)]

    def preflight(self, folder: Path | None) -> tuple[str, str] | None:
        if names_in(self.src):
            return None  # depends on the node; checked when it runs
        if resolve_source(self.src, folder) is None:
            where = f"{folder} or {Path.cwd()}" if folder else str(Path.cwd())
            return "src", f"upload source {self.src!r} not found (looked in {where})"
        return None

    def describe(self) -> str:
        return f"upload {self.src} → {self.dest}"

    def _local_files(self, source: Path) -> list[tuple[Path, str]]:
        if source.is_dir():
            files = sorted(p for p in source.rglob("*") if p.is_file())
            return [(p, p.relative_to(source).as_posix()) for p in files]
        return [(source, "")]

    async def plan(self, ctx: StepContext) -> Plan[_Transfer]:
        src = ctx.render(self.src, shell=False)
        dest = ctx.render(self.dest, shell=False)
        source = resolve_source(src, ctx.recipe_folder)
        if source is None:
            raise FileNotFoundError(f"upload source {src!r} not found")
        if source.is_file() and dest.endswith("/"):
            dest = dest + source.name
        dest = remote_path(dest.rstrip("/") or dest)
        local = self._local_files(source)
        where = shell_path(dest)
        facts = (f'{SHA256}\n'
                 f'if [ -d {where} ]; then cd {where} && find . -type f -exec $H {{}} +\n'
                 f'elif [ -f {where} ]; then $H < {where}; fi; true')
        if local_rsync() is not None:
            facts = f"command -v rsync >/dev/null 2>&1 && echo {_RSYNC}\n" + facts
        result = await ctx.run(facts, quiet=True)
        lines = result.stdout.split("\n")  # only \n ends a line: a name may hold \x1c
        rsync = lines[:1] == [_RSYNC]
        remote = {("" if not source.is_dir() else name.removeprefix("./")): digest
                  for digest, name in hash_lines(lines)}
        send = [(path, rel, dest if not rel else f"{dest}/{rel}") for path, rel in local
                if remote.get(rel) != file_hash(path)]
        if not send:
            return Plan(False, f"{dest} is up to date ({len(local)} files)")
        delta = {rel for _, rel, _ in send if rel in remote} if rsync else set()
        transfer = _Transfer(send, delta, source, dest)
        commands = [f"put {p} {r}" for p, rel, r in send if rel not in delta]
        if delta:
            commands.append(shell_join(["rsync", "-s", *self._rsync_args(transfer, "LIST")]))
        how = f" ({len(delta)} by rsync delta)" if delta else ""
        return Plan(True, f"would send {len(send)} of {len(local)} files{how}: "
                    f"{_shown([rel for _, rel, _ in send])}", commands, transfer)

    def _rsync_args(self, transfer: _Transfer, listing: str) -> list[str]:
        """rsync's arguments for the files in transfer.delta (a folder's named, NUL-separated,
        in the file `listing`). -I: their content differs even where size and time agree; -L
        and -p: what links point to, and the local permissions, as SFTP sends them; `mode`
        overrides those."""
        flags = ["-I", "-L", "-p", "--stats"]
        if self.mode is not None:
            flags.append(f"--chmod=F{self.mode:o}")
        node_path = transfer.dest[2:] if transfer.dest.startswith("~/") else transfer.dest
        if not transfer.source.is_dir():
            return flags + [str(transfer.source), rsync_remote(node_path)]
        return flags + ["--from0", f"--files-from={listing}", str(transfer.source) + "/",
                        rsync_remote((node_path or ".") + "/")]

    async def apply(self, ctx: StepContext, plan: Plan[_Transfer]) -> Outcome:
        transfer = plan.given()
        whole = [(p, r) for p, rel, r in transfer.files if rel not in transfer.delta]
        for local, remote in whole:
            mode = self.mode if self.mode is not None else local.stat().st_mode & 0o7777
            await ctx.put(local, remote, mode=mode)
        parts = [f"{len(whole)} over SFTP"] if whole else []
        if transfer.delta:
            with tempfile.TemporaryDirectory(prefix="saf-upload-") as folder:
                listing = Path(folder) / "files"
                listing.write_bytes(b"".join(os.fsencode(rel) + b"\0"
                                             for rel in sorted(transfer.delta)))
                result = await ctx.transfer(self._rsync_args(transfer, str(listing)))
            if not result.ok:
                return Outcome(StepStatus.FAILED, f"rsync exit status {result.exit_status}",
                               exit_status=result.exit_status, tail=result.tail())
            wire = result.bytes_sent()
            parts.append(f"{len(transfer.delta)} with rsync"
                         + (f" ({wire} bytes on the wire)" if wire is not None else ""))
        return Outcome(StepStatus.CHANGED, f"sent {len(transfer.files)} files: " + ", ".join(parts))
