"""Where the nodes of one collective step wait for each other, phase by phase."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any


class Missing(Exception):
    """A node did not arrive at a phase in time (it failed, or was never started)."""


class Rendezvous:
    """Each expected name arrives once per phase with a value (an Exception when it failed);
    `wait` returns every value once all have arrived, a `Missing` for those that had not
    arrived when the time ran out."""

    def __init__(self) -> None:
        self._expected: dict[str, set[str]] = {}
        self._values: dict[str, dict[str, Any]] = {}
        self._events: dict[str, asyncio.Event] = {}
        self.plans: dict[str, Any] = {}  # what each node found, once all have planned

    def expect(self, phase: str, names: Iterable[str]) -> None:
        """Set who a phase waits for (the first call wins: every node computes the same)."""
        if phase not in self._expected:
            self._expected[phase] = set(names)
            self._check(phase)

    def arrive(self, phase: str, name: str, value: Any) -> None:
        self._values.setdefault(phase, {}).setdefault(name, value)
        self._check(phase)

    def arrived(self, phase: str, name: str) -> bool:
        return name in self._values.get(phase, {})

    def _event(self, phase: str) -> asyncio.Event:
        return self._events.setdefault(phase, asyncio.Event())

    def _check(self, phase: str) -> None:
        expected = self._expected.get(phase)
        if expected is not None and expected <= set(self._values.get(phase, {})):
            self._event(phase).set()

    async def wait(self, phase: str, timeout: float) -> dict[str, Any]:  # noqa: ASYNC109 - ends with what came by then, where asyncio.timeout would raise
        try:
            await asyncio.wait_for(self._event(phase).wait(), max(timeout, 0.0))
        except TimeoutError:
            pass
        values = dict(self._values.get(phase, {}))
        for name in self._expected.get(phase, set()) - set(values):
            values[name] = Missing(f"{name} did not get this far in time")
        return values
