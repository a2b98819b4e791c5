"""Where the nodes of one collective step wait for each other, phase by phase: one `Phase`
per phase, typed by what its nodes bring (the mtu kind's plans, whether each applied its
change, what each found after it)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Generic, TypeVar

from saf.deadline import within

T = TypeVar("T")


class Missing(Exception):
    """A node did not arrive at a phase in time (it failed, or was never started)."""


class Phase(Generic[T]):
    """Each expected name arrives once with a value (an Exception when it failed); `wait`
    returns every value once all have arrived, a `Missing` for those that had not arrived
    when the time ran out."""

    def __init__(self) -> None:
        self._expected: set[str] | None = None
        self._values: dict[str, T | Exception] = {}
        self._event = asyncio.Event()

    def expect(self, names: Iterable[str]) -> None:
        """Set who the phase waits for (the first call wins: every node computes the same)."""
        if self._expected is None:
            self._expected = set(names)
            self._check()

    def arrive(self, name: str, value: T | Exception) -> None:
        self._values.setdefault(name, value)
        self._check()

    def arrived(self, name: str) -> bool:
        return name in self._values

    def _check(self) -> None:
        if self._expected is not None and self._expected <= set(self._values):
            self._event.set()

    async def wait(self, timeout: float) -> dict[str, T | Exception]:  # noqa: ASYNC109 - ends with what came by then, where asyncio.timeout would raise
        try:
            await within(self._event.wait(), max(timeout, 0.0))
        except TimeoutError:
            pass
        values = dict(self._values)
        for name in (self._expected or set()) - set(values):
            values[name] = Missing(f"{name} did not get this far in time")
        return values
