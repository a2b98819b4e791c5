"""Where saf keeps its files on the operator's machine (XDG on Linux, ~/Library on macOS).

Each can be moved with an environment variable, which the tests and the demo use.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP = "saf"


def config_dir() -> Path:
    return Path(os.environ.get("SAF_CONFIG_DIR") or platformdirs.user_config_dir(APP))


def state_dir() -> Path:
    return Path(os.environ.get("SAF_STATE_DIR") or platformdirs.user_state_dir(APP))


def cache_dir() -> Path:
    return Path(os.environ.get("SAF_CACHE_DIR") or platformdirs.user_cache_dir(APP))
