"""The Ray cluster followed live (the cockpit's Ray screen): the head's dashboard through one
SSH forward, kept open between reads and opened again after a failure."""

from __future__ import annotations

import contextlib

from saf.errors import RayError
from saf.fleet import Fleet
from saf.ray import command as rc
from saf.ray.dashboard import Dashboard
from saf.ray.session import open_dashboard
from saf.ray.status import RayStatus, read_status


class RayWatch:
    def __init__(self, fleet: Fleet, *, temp_dir: str = rc.DEFAULT_TEMP_DIR,
                 port: int | None = None) -> None:
        self.fleet = fleet
        self.temp_dir = temp_dir
        self.port = port
        self._stack: contextlib.AsyncExitStack | None = None
        self._dashboard: Dashboard | None = None

    async def read(self) -> RayStatus:
        """The cluster now; RayError (saying how to start Ray) when it does not answer."""
        try:
            if self._dashboard is None:
                stack = contextlib.AsyncExitStack()
                try:
                    self._dashboard = await stack.enter_async_context(open_dashboard(
                        self.fleet, port=self.port, temp_dir=self.temp_dir,
                        request_timeout=5.0))
                except BaseException:
                    await stack.aclose()
                    raise
                self._stack = stack
            return await read_status(self._dashboard)
        except RayError:
            await self.close()
            raise

    async def close(self) -> None:
        stack, self._stack, self._dashboard = self._stack, None, None
        if stack is not None:
            with contextlib.suppress(Exception):
                await stack.aclose()
