"""Building the agent as a zipapp named by its content hash.

The zip is built deterministically (sorted names, fixed timestamps) from the `agents`
package, so the same source always gives the same bytes and the same hash: a node that
already has `agent-<hash>.pyz` in its cache never gets it uploaded again.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
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


def zip_bytes(source: Path | None = None) -> bytes:
    """The agent zipapp's bytes, deterministic for a given source tree."""
    root = source or Path(agents.__file__).resolve().parent
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        entries = [("__main__.py", MAIN.encode())]
        for file in sorted(root.rglob("*.py")):
            rel = file.relative_to(root).as_posix()
            if "__pycache__" in rel:
                continue
            entries.append((f"agents/{rel}", file.read_bytes()))
        for name, data in entries:
            info = zipfile.ZipInfo(name, FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    return b"#!/usr/bin/env python3\n" + buf.getvalue()


def build(cache: Path | None = None, source: Path | None = None) -> AgentBundle:
    """Build the zipapp into saf's cache folder (once per content) and say where it is."""
    data = zip_bytes(source)
    sha256 = hashlib.sha256(data).hexdigest()
    digest = sha256[:16]
    folder = (cache or paths.cache_dir()) / "agents"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"agent-{digest}.pyz"
    try:
        whole = path.read_bytes() == data
    except FileNotFoundError:  # not built yet, or just removed by whoever clears the cache
        whole = False
    if not whole:
        paths.replace_atomically(path, data)  # other saf processes may build it right now
    return AgentBundle(path, digest, sha256)
