"""asyncssh's import without its search for optional C libraries, answered from saf's cache.

Importing asyncssh asks `ctypes.util.find_library` for liboqs (post-quantum key exchange) and
libnettle (UMAC). On Linux each question the loader's cache cannot answer runs `ldconfig -p`,
then gcc, then ld: seven programs where gcc is installed and liboqs is not, most of asyncssh's
import time, paid by every command before its first connection. The answers are kept in saf's
cache folder with what they depend on (the loader's cache file, the library search paths,
PATH, this Python); an import whose stamp matches reads them instead of asking again. A
library installed since changes /etc/ld.so.cache (package managers run ldconfig), so it is
found on the next import; one copied by hand outside the loader's cache is found once the
cache file (`libraries.json`) is removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

from saf import paths

LOADER_CACHE = "/etc/ld.so.cache"
CACHE_NAME = "libraries.json"


def stamp() -> str:
    """What `find_library`'s answers depend on, as one string."""
    try:
        loader = str(os.stat(LOADER_CACHE).st_mtime_ns)
    except OSError:
        loader = "-"
    parts = [sys.platform, sys.version, loader,
             *(os.environ.get(v, "") for v in ("LD_LIBRARY_PATH", "LIBRARY_PATH", "PATH"))]
    return "\0".join(parts)


def _read(path: Path, now: str) -> dict[str, str | None]:
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(path.read_text())
        if isinstance(data, dict) and data.get("stamp") == now and \
                isinstance(data.get("found"), dict):
            return {str(k): v if isinstance(v, str) else None for k, v in data["found"].items()}
    return {}


def import_asyncssh(cache: Path | None = None) -> None:
    """Import asyncssh, its `find_library` questions answered from `cache` (saf's cache folder's
    libraries.json) where they were asked before under the same stamp, and kept there."""
    if "asyncssh" in sys.modules:
        return
    import ctypes.util

    path = cache or paths.cache_dir() / CACHE_NAME
    now = stamp()
    known = _read(path, now)
    asked = dict(known)
    real = ctypes.util.find_library

    def find_library(name: str) -> str | None:
        if name not in asked:
            asked[name] = real(name)
        return asked[name]

    ctypes.util.find_library = find_library
    try:
        import asyncssh  # noqa: F401 - imported here, with the questions answered
    finally:
        ctypes.util.find_library = real
    if asked != known:  # something was looked up for real: keep it for the next import
        with contextlib.suppress(OSError):
            paths.private_dir(path.parent)
            paths.replace_atomically(path, json.dumps({"stamp": now, "found": asked}).encode(),
                                    mode=0o600)
