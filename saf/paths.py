"""Where saf keeps its files on the operator's machine (XDG on Linux, ~/Library on macOS).

Each can be moved with an environment variable, which the tests and the demo use.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Any

import platformdirs

APP = "saf"


def config_dir() -> Path:
    return Path(os.environ.get("SAF_CONFIG_DIR") or platformdirs.user_config_dir(APP))


def state_dir() -> Path:
    return Path(os.environ.get("SAF_STATE_DIR") or platformdirs.user_state_dir(APP))


def cache_dir() -> Path:
    return Path(os.environ.get("SAF_CACHE_DIR") or platformdirs.user_cache_dir(APP))


def private_dir(path: Path) -> Path:
    """`path` made (with its parents) as a folder only its owner can enter: saf's state holds
    run logs with command output and recordings of a cluster, nobody else's business."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)  # mkdir's mode is cut by the umask, and an older folder keeps its own
    return path


def open_private(path: Path, mode: str = "w", *, encoding: str | None = None) -> IO[Any]:
    """`open(path, mode)` for a new file readable by its owner alone (0600, whatever the
    umask); "w" modes truncate an existing file and set it to 0600 too."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if "a" in mode else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, mode, encoding=encoding)


def replace_atomically(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """`path` holds `data` whole or not at all, whoever else writes it at the same moment:
    written to a temporary file of this call's own (mkstemp, same folder), synced, and renamed
    over it. `mode` 0o600 for what only its owner may read.
    A temporary name shared by two writers lets one truncate what the other has just renamed
    into place (a reader then sees a file of NUL bytes)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), mode)
            out.write(data)
            out.flush()
            os.fsync(out.fileno())  # whole on disk before it takes the name
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
