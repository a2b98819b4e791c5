"""Building the agent as a zipapp named by its content hash.

The zip is built deterministically (sorted names, fixed timestamps) from the `agents`
package, so the same source always gives the same bytes and the same hash: a node that
already has `agent-<hash>.pyz` in its cache never gets it uploaded again.

Every command that runs agents (`saf top`, `record`, `serve`, `net test`, the cockpit) asks
for the bundle before its first connection, and zipping the sources took 10 to 30 ms of the
0.15 s that start-up may take (tests/perf/bench_cli.py). So the last build is remembered in
saf's cache folder (`agent-built.json`) with what its bytes depend on: every source file's
path, size and modification time (what Python's own .pyc check trusts), this module's own
and zlib's version. A build whose stamp matches, and whose zipapp is still there whole (its
sha256), is that one again, without zipping; anything else builds as before.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import zlib
from dataclasses import dataclass
from pathlib import Path

import saf.agents as agents
from saf import paths
from saf.agents import protocol


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))


FIXED_TIME = (2020, 1, 1, 0, 0, 0)
# The zipapp's entry: its first lines parse and run on any Python, 2.7 included, so an older
# one is refused with its version and a known exit status (the link turns it into the fix)
# instead of a traceback from the first module that uses newer Python.
_NEEDS = f"it needs {_dotted(protocol.MIN_PYTHON)} or newer"
MAIN = f"""\
import sys
if sys.version_info < {protocol.MIN_PYTHON!r}:
    sys.stderr.write("Python %s is too old for the saf agent ({_NEEDS})\\n"
                     % sys.version.split()[0])
    sys.exit({protocol.TOO_OLD_EXIT})
from agents.main import main
sys.exit(main())
"""
REMOTE_DIR = ".cache/saf/agents"  # relative to the node user's home
BUILT = "agent-built.json"  # in saf's cache folder: the last build's stamp and its sha256


@dataclass(frozen=True)
class AgentBundle:
    path: Path        # the zipapp on the operator's machine
    digest: str       # first 16 hex digits of its sha256
    sha256: str = ""  # all of it, to check a node's copy against

    @property
    def name(self) -> str:
        return f"agent-{self.digest}.pyz"

    @property
    def remote(self) -> str:
        """Where it lives on a node, relative to the user's home."""
        return f"{REMOTE_DIR}/{self.name}"


def _sources(root: Path) -> list[Path]:
    return [file for file in sorted(root.rglob("*.py"))
            if "__pycache__" not in file.relative_to(root).as_posix()]


def zip_bytes(source: Path | None = None) -> bytes:
    """The agent zipapp's bytes, deterministic for a given source tree."""
    import zipfile  # only when zipping: a build that is remembered needs none of it

    root = source or Path(agents.__file__).resolve().parent
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        entries = [("__main__.py", MAIN.encode())]
        for file in _sources(root):
            entries.append((f"agents/{file.relative_to(root).as_posix()}", file.read_bytes()))
        for name, data in entries:
            info = zipfile.ZipInfo(name, FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    return b"#!/usr/bin/env python3\n" + buf.getvalue()


def stamp(root: Path) -> str:
    """What the zipapp's bytes depend on, as one string (see the module's docstring)."""
    parts = [zlib.ZLIB_RUNTIME_VERSION, MAIN]
    for file in [Path(__file__), *_sources(root)]:
        st = file.stat()
        parts.append(f"{file}\0{st.st_size}\0{st.st_mtime_ns}")
    return "\n".join(parts)


def _remembered(cache: Path, now: str) -> AgentBundle | None:
    """The last build, when its stamp is `now` and its zipapp is there whole."""
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        built = json.loads((cache / BUILT).read_text())
        if built["stamp"] == now:
            sha256 = str(built["sha256"])
            path = cache / "agents" / f"agent-{sha256[:16]}.pyz"
            if hashlib.sha256(path.read_bytes()).hexdigest() == sha256:
                return AgentBundle(path, sha256[:16], sha256)
    return None


def build(cache: Path | None = None, source: Path | None = None) -> AgentBundle:
    """Build the zipapp into saf's cache folder (once per content) and say where it is."""
    cache = cache or paths.cache_dir()
    root = source or Path(agents.__file__).resolve().parent
    now = stamp(root)
    known = _remembered(cache, now)
    if known is not None:
        return known
    data = zip_bytes(root)
    sha256 = hashlib.sha256(data).hexdigest()
    digest = sha256[:16]
    folder = cache / "agents"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"agent-{digest}.pyz"
    try:
        whole = path.read_bytes() == data
    except FileNotFoundError:  # not built yet, or just removed by whoever clears the cache
        whole = False
    if not whole:
        paths.replace_atomically(path, data)  # other saf processes may build it right now
    with contextlib.suppress(OSError):  # not remembered: the next build zips again
        paths.replace_atomically(cache / BUILT,
                                 json.dumps({"stamp": now, "sha256": sha256}).encode())
    return AgentBundle(path, digest, sha256)
