"""kind = "upload": copy a local file or folder to the node, sending only what changed.

`src` is relative to the recipe's folder, then to the working directory. `dest` is a path on
the node (relative paths and ~/ are in the user's home); a `dest` ending in "/" receives a file
under its own name. A folder's contents go into `dest`.

When both ends have rsync, the facts come from `rsync --dry-run --checksum --itemize-changes`
and the changed files go by rsync's delta transfer (only the changed parts of a file travel),
over saf's own SSH connection (saf.connect.rsync). Otherwise the facts are the SHA-256 of every
file already at `dest` (one command) and the files whose hash differs are sent whole over SFTP.
Either way a file is written under a temporary name and renamed into place.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from saf.connect.rsync import local_rsync
from saf.connect.rsync import remote as rsync_remote
from saf.recipe.kinds.base import Fail, Kind, Outcome, Plan, StepContext, text
from saf.recipe.substitute import names_in, shell_path
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


@dataclass
class _Transfer:
    files: list[tuple[Path, str]]  # (local file, remote path)


@dataclass
class _Rsync:
    source: Path
    dest: str  # as remote_path() wrote it
    changed: list[str]  # relative names ("" for a single file)
    absent: bool  # dest did not exist on the node
    total: int


_RSYNC = "saf-upload-rsync"
_ABSENT = "saf-upload-absent"


def _count(send: list, local: list) -> str:
    return f"{len(send)} of {len(local)} files"


def _shown(names: list[str]) -> str:
    names = [n or "(the file)" for n in names]
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


class Upload(Kind):
    name = "upload"
    keys = {"src": "a local file or folder (relative to the recipe's folder, then the cwd)",
            "dest": "where it goes on the node",
            "mode": "file permissions, e.g. \"0644\" (default: kept from the source)"}
    supports_become = False

    def __init__(self, src: str, dest: str, mode: int | None) -> None:
        self.src = src
        self.dest = dest
        self.mode = mode

    @classmethod
    def parse(cls, params: dict[str, Any], fail: Fail) -> Upload:
        mode = params.get("mode")
        if mode is not None:
            try:
                mode = int(mode, 8) if isinstance(mode, str) else int(mode)
            except ValueError:
                raise fail("mode", f"'mode' must be octal like \"0644\", not {mode!r}") from None
            if isinstance(params.get("mode"), bool) or not 0 <= mode <= 0o7777:
                raise fail("mode", "'mode' must be octal like \"0644\"")
        return cls(text(params, "src", fail, required=True) or "",
                   text(params, "dest", fail, required=True) or "", mode)

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

    def _local_files(self, source: Path, dest: str) -> list[tuple[Path, str]]:
        if source.is_dir():
            files = sorted(p for p in source.rglob("*") if p.is_file())
            return [(p, p.relative_to(source).as_posix()) for p in files]
        return [(source, "")]

    async def plan(self, ctx: StepContext) -> Plan:
        src = ctx.render(self.src, shell=False)
        dest = ctx.render(self.dest, shell=False)
        source = resolve_source(src, ctx.recipe_folder)
        if source is None:
            raise FileNotFoundError(f"upload source {src!r} not found")
        if source.is_file() and dest.endswith("/"):
            dest = dest + source.name
        dest = remote_path(dest.rstrip("/") or dest)
        local = self._local_files(source, dest)
        where = shell_path(dest)
        hasher = ('H=sha256sum; command -v sha256sum >/dev/null 2>&1 || H="shasum -a 256"\n'
                  f'if [ -d {where} ]; then cd {where} && find . -type f -exec $H {{}} +\n'
                  f'elif [ -f {where} ]; then $H {where}; fi; true')
        if local_rsync() is not None:
            # One round trip either way: rsync's presence (and whether dest exists), or the
            # hashes for the SFTP path.
            hasher = (f"if command -v rsync >/dev/null 2>&1; then echo {_RSYNC}; "
                      f"[ -e {where} ] || echo {_ABSENT}; exit 0; fi\n" + hasher)
        result = await ctx.run(hasher, quiet=True)
        lines = result.stdout.splitlines()
        if lines[:1] == [_RSYNC]:
            return await self._plan_rsync(ctx, source, dest, local, absent=_ABSENT in lines)
        remote: dict[str, str] = {}
        for line in lines:
            digest, _, name = line.partition("  ")
            if name:
                remote["" if not source.is_dir() else name.removeprefix("./")] = digest
        send = [(path, dest if not rel else f"{dest}/{rel}") for path, rel in local
                if remote.get(rel) != file_hash(path)]
        if not send:
            return Plan(False, f"{dest} is up to date ({len(local)} files)")
        return Plan(True, f"would send {_count(send, local)} over SFTP: "
                    f"{_shown([r for _, r in send])}",
                    [f"put {p} {r}" for p, r in send], _Transfer(send))

    # -- rsync ----------------------------------------------------------------------------
    def _rsync_args(self, source: Path, dest: str) -> tuple[list[str], str, str]:
        """(flags, local side, node side) of a transfer. -L sends what links point to and -p
        keeps the local permissions, as the SFTP path does; `mode` overrides them."""
        flags = ["-L", "-p"]
        if self.mode is not None:
            flags.append(f"--chmod=F{self.mode:o}")
        node_path = dest[2:] if dest.startswith("~/") else dest  # rsync starts in the home
        if source.is_dir():
            return flags, str(source) + "/", rsync_remote((node_path or ".") + "/")
        return flags, str(source), rsync_remote(node_path)

    async def _plan_rsync(self, ctx: StepContext, source: Path, dest: str,
                          local: list[tuple[Path, str]], *, absent: bool) -> Plan:
        flags, here, there = self._rsync_args(source, dest)
        if absent:
            changed = [rel for _, rel in local]
        else:
            dry = await ctx.transfer(
                flags + ["-r", "-n", "-c", "--out-format=%i %n", here, there])
            if not dry.ok:
                raise OSError(f"rsync --dry-run failed: {' / '.join(dry.tail(3))}")
            # "<f" lines are files that would be sent (an attribute-only change is not one).
            itemized = {line[12:] for line in dry.stdout.splitlines() if line.startswith("<f")}
            changed = [rel for _, rel in local if (rel or source.name) in itemized]
            if itemized and not changed:  # names rsync escaped: let it pick the files again
                changed = [rel for _, rel in local]
            if not changed:
                return Plan(False, f"{dest} is up to date ({len(local)} files), checked with rsync")
        command = shell_join(["rsync", "-s", *flags, "-r", "-c", here, there])
        return Plan(True, f"would send {_count(changed, local)} with rsync: {_shown(changed)}",
                    [command], _Rsync(source, dest, changed, absent, len(local)))

    async def _apply_rsync(self, ctx: StepContext, plan: Plan) -> Outcome:
        job: _Rsync = plan.data
        if job.absent:  # rsync makes the last folder of a path, not the ones above it
            parent = job.dest if job.source.is_dir() else job.dest.rpartition("/")[0]
            if parent and parent != "~":
                made = await ctx.run(f"mkdir -p {shell_path(parent)}", quiet=True)
                if not made.ok:
                    return Outcome.from_result(made)
        flags, here, there = self._rsync_args(job.source, job.dest)
        flags = flags + ["--stats"]
        with tempfile.TemporaryDirectory(prefix="saf-upload-") as folder:
            if job.source.is_dir() and not job.absent and len(job.changed) < job.total:
                # Only the files the dry run found changed; -I: their content differs even
                # where size and time agree. NUL-separated so any name works.
                listing = Path(folder) / "files"
                listing.write_bytes(b"".join(os.fsencode(r) + b"\0" for r in job.changed))
                flags += ["-I", f"--files-from={listing}", "--from0"]
            else:
                flags += ["-r", "-I"]
            result = await ctx.transfer(flags + [here, there])
        if not result.ok:
            what = f"rsync exit status {result.exit_status}"
            return Outcome("failed", what, exit_status=result.exit_status, tail=result.tail())
        wire = result.bytes_sent()
        sent = f"sent {len(job.changed)} files with rsync"
        return Outcome("changed", sent + (f" ({wire} bytes on the wire)" if wire else ""))

    async def apply(self, ctx: StepContext, plan: Plan) -> Outcome:
        if isinstance(plan.data, _Rsync):
            return await self._apply_rsync(ctx, plan)
        transfer: _Transfer = plan.data
        for local, remote in transfer.files:
            mode = self.mode if self.mode is not None else local.stat().st_mode & 0o7777
            await ctx.put(local, remote, mode=mode)
        return Outcome("changed", f"sent {len(transfer.files)} files over SFTP")
