"""Waiting in a test for something another process does: poll a condition up to a limit.

The limit is a safety net so that a broken part fails the test instead of hanging it, never a
timing assertion: `assert until(lambda: ..., 30)` reads "this happens", with the 30 s there
only to end the wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def until(what: Callable[[], object], timeout: float = 30, every: float = 0.2) -> bool:
    """Whether `what()` became true within `timeout` seconds, asking every `every` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if what():
            return True
        time.sleep(every)
    return False
