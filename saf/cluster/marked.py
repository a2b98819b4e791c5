"""The services `saf up` installed on a node for a cluster: every unit, plist or supervisor
folder named saf-* (~/.saf/services/* for the supervisor) whose file carries the mark
ServiceSpec.up writes (X-Saf-Up=CLUSTER, a plist's X-Saf-Up key, spec.json's "up"). One
that a plain `saf run` installed has no mark and is never listed: saf up removes only what
it put there itself (`not declared`, docs/cluster.md).

`LIST` is one command for the node's shell; `parse` reads its output.
"""

from __future__ import annotations

import json
import plistlib
import re
from dataclasses import dataclass

from saf.cluster.initsys import ManagerKind
from saf.cluster.units import UP_KEY, valid_name

_HEAD = "@@saf-marked-file@@ "
# Where each manager keeps saf's files, for a shell on the node (globs left unquoted).
WHERE: tuple[tuple[ManagerKind, str], ...] = (
    ("systemd", "/etc/systemd/system/saf-*.service"),
    ("systemd-user", '"$HOME"/.config/systemd/user/saf-*.service'),
    ("launchd-daemon", "/Library/LaunchDaemons/saf-*.plist"),
    ("launchd-agent", '"$HOME"/Library/LaunchAgents/saf-*.plist'),
    ("detached", '"$HOME"/.saf/services/*/spec.json'),
)
LIST = ("for f in " + " ".join(glob for _, glob in WHERE) + "; do "
        f"if [ -f \"$f\" ]; then printf '%s\\n' \"{_HEAD}$f\"; cat \"$f\"; echo; fi; done; true")

_PATHS: tuple[tuple[ManagerKind, re.Pattern[str]], ...] = (
    ("systemd", re.compile(r"^/etc/systemd/system/saf-(.+)\.service$")),
    ("systemd-user", re.compile(r"/\.config/systemd/user/saf-(.+)\.service$")),
    ("launchd-daemon", re.compile(r"^/Library/LaunchDaemons/saf-(.+)\.plist$")),
    ("launchd-agent", re.compile(r"/Library/LaunchAgents/saf-(.+)\.plist$")),
    ("detached", re.compile(r"/\.saf/services/([^/]+)/spec\.json$")),
)


@dataclass(frozen=True)
class Marked:
    """A service saf up installed: its name (without saf-) and the manager that keeps it."""

    name: str
    kind: ManagerKind


def parse(output: str, cluster: str) -> list[Marked]:
    """The services of `LIST`'s output that carry `cluster`'s mark, each once (a name kept
    by two managers is listed under each)."""
    found: list[Marked] = []
    for chunk in output.split(_HEAD)[1:]:
        path, _, text = chunk.partition("\n")
        for kind, pattern in _PATHS:
            match = pattern.search(path.strip())
            if match and valid_name(match.group(1)) and mark_of(kind, text) == cluster:
                item = Marked(match.group(1), kind)
                if item not in found:
                    found.append(item)
                break
    return found


def mark_of(kind: ManagerKind, text: str) -> str | None:
    """The cluster a service's file names as the `saf up` that installed it (None: none)."""
    try:
        if kind == "detached":
            value = json.loads(text).get("up")
        elif kind.startswith("systemd"):
            value = next((line.partition("=")[2].replace("%%", "%")
                          for line in text.splitlines()
                          if line.partition("=")[0].strip() == UP_KEY), None)
        else:
            value = plistlib.loads(text.strip().encode()).get(UP_KEY)
    except (ValueError, AttributeError, plistlib.InvalidFileException):
        return None
    return value if isinstance(value, str) else None

