"""Finding the processes a test started on a 'node' (all nodes are this machine)."""

from __future__ import annotations

import psutil


def sleepers(tag: str) -> list[psutil.Process]:
    """Processes running exactly `sleep TAG`. A unique TAG (e.g. "913.<pid>") matches the
    remote command and never the saf client, whose argv holds it inside a longer string."""
    return [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", tag]]
