"""The garbage collector during the `saf` program's start: off until the command's work begins.

The imports before a command's first connection make objects by the hundred thousand, almost
none of them garbage, and the collector ran over them about a hundred times: 16 to 56 ms of
that start on a loaded 2-core machine (counted with gc.callbacks), where the whole start may
take 0.15 s (tests/perf/bench_cli.py). saf.cli's main pauses it for the program only (not for
a process that calls main(argv)); saf.commands.common.run turns it back on as a command's work
begins, after freezing what the start made (modules, classes, functions: kept where no
collection looks again, as saf.cli's `_leaving` does at the end); a timer does at the latest,
for a command whose work does not begin there (the cockpit's).
"""

from __future__ import annotations

import gc
import threading

# Seconds after the program's start at which the collector is on again at the latest, for a
# command whose work does not start through saf.commands.common.run (the cockpit's).
COLLECT_BACK = 1.0
_paused = False  # whether pause() turned the collector off (and it is still off)


def pause() -> None:
    """Turn the garbage collector off until back_on(), or COLLECT_BACK seconds from now."""
    global _paused
    gc.disable()
    _paused = True
    back = threading.Timer(COLLECT_BACK, back_on)
    back.daemon = True
    back.start()


def back_on() -> None:
    """The collector on again, if pause() turned it off: what the start made is frozen
    first (kept where collections do not look: modules, classes, functions), so no collection
    walks it again."""
    global _paused
    if _paused:
        _paused = False
        gc.freeze()
        gc.enable()
