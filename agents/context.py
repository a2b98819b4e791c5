"""Where the collectors read from: the filesystem roots and the external tools.

Everything a collector reads goes through a Context, so a test can point it at a recorded
sysfs tree or a recorded tool output instead of this machine's. The agent and its collectors
hold it as `machine` (the machine they read), never `ctx`: that name is the operator side's
click and recipe-step contexts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from types import ModuleType


class Context:
    """`root` is prefixed to /proc and /sys paths; `commands` maps a tool name (macmon,
    powermetrics, sudo) to the argv that runs it; `modules` maps a module name (psutil,
    pynvml) to an already imported module, or None to pretend it is missing."""

    # Homebrew's folders (Apple Silicon, Intel Macs): an SSH command's PATH lacks them, so a
    # `brew install macmon` (apple-check) would otherwise stay unseen by the agent.
    MACOS_BIN = ("/opt/homebrew/bin", "/usr/local/bin")

    def __init__(self, root: str = "/",
                 commands: Mapping[str, Sequence[str] | None] | None = None,
                 modules: Mapping[str, ModuleType | None] | None = None,
                 platform: str | None = None, cluster_addresses: Iterable[str] = (),
                 macos_bin: Iterable[str] | None = None) -> None:
        self.root = root
        self.macos_bin = tuple(self.MACOS_BIN if macos_bin is None else macos_bin)
        self.commands = dict(commands or {})
        self.modules = dict(modules or {})
        self.platform = platform or sys.platform
        self.cluster_addresses = set(cluster_addresses)

    # -- files -----------------------------------------------------------------------------
    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *[p.lstrip("/") for p in parts])

    def read(self, *parts: str) -> str | None:
        """A file's text, or None when it cannot be read (absent, EINVAL from sysfs, ...).
        Bytes that are not UTF-8 (an interface name is any bytes the kernel took) come back
        as surrogates, as os.listdir gives them: paths built from them reach the same file,
        and `printable` escapes them for a frame."""
        try:
            with open(self.path(*parts), encoding="utf-8", errors="surrogateescape") as f:
                return f.read()
        except (OSError, ValueError):
            return None

    def listdir(self, *parts: str) -> list[str]:
        try:
            return sorted(os.listdir(self.path(*parts)))
        except OSError:
            return []

    def exists(self, *parts: str) -> bool:
        return os.path.exists(self.path(*parts))

    @property
    def linux(self) -> bool:
        return self.platform.startswith("linux")

    @property
    def macos(self) -> bool:
        return self.platform == "darwin"

    # -- modules ---------------------------------------------------------------------------
    def module(self, name: str) -> tuple[ModuleType | None, str]:
        """(module, "") or (None, why it cannot be used)."""
        if name in self.modules:
            mod = self.modules[name]
            return (mod, "") if mod is not None else (None, "%s is not installed" % name)
        try:
            mod = __import__(name)
        except ImportError as exc:
            return None, "%s is not importable (%s)" % (name, exc)
        except Exception as exc:  # noqa: BLE001 - a broken install must not stop the agent
            return None, "importing %s failed: %s" % (name, exc)
        self.modules[name] = mod
        return mod, ""

    # -- tools -----------------------------------------------------------------------------
    def command(self, name: str, *args: str) -> list[str] | None:
        """The argv of a tool with `args`, or None when the tool is not installed."""
        if name in self.commands:
            base = self.commands[name]
            return list(base) + list(args) if base else None
        found = shutil.which(name)
        if not found and self.macos:
            found = shutil.which(name, path=os.pathsep.join(self.macos_bin))
        return [found] + list(args) if found else None

    def popen(self, argv: Sequence[str]) -> subprocess.Popen[bytes]:

        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, close_fds=True)
