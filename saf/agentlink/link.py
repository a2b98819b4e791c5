"""One node's agent link: deploy, start, read frames, and come back after every failure.

The link runs until cancelled. Each attempt: make sure the node has this agent build, start
it with the node's Python through the connector, then read one frame per line. Every line
becomes an event: a valid frame its typed event, anything else a `FrameRejected` with the
reason (never fatal). The attempt ends when the agent's stream ends (agent killed, SSH
connection or server gone) or when no frame came for two intervals; the node is then marked
lost with the reason, and the link retries after an exponential backoff, reset by the next
hello. No exception escapes the link: a failure of any kind is a `lost` status.

The link is the one place that waits between attempts (the connector tries once each time it
is asked), so the `lost` status's `retry_in` is the truth: the next attempt starts `retry_in`
seconds after the status's `time`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from saf.agentlink import deploy
from saf.agentlink.build import AgentBundle
from saf.agentlink.lines import LineFramer
from saf.agents import protocol
from saf.connect.backoff import Backoff
from saf.connect.base import Connector, RemoteProcess
from saf.deadline import within
from saf.errors import ConnectError
from saf.events import Emit
from saf.metrics.events import FRAME_EVENTS, AgentStatus, FrameRejected, NodeStatus
from saf.metrics.frames import HelloFrame, SampleFrame, read_frame
from saf.shell import quote

log = logging.getLogger(__name__)

SILENT_INTERVALS = 2.0  # no frame for this many intervals: the agent is lost
START_GRACE = 15.0      # seconds a fresh agent may take to say hello (cold Python, slow disk)


class _Ended(Exception):
    """An attempt ended: (reason, message) for the lost status."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class AgentLink:
    def __init__(self, conn: Connector, bundle: AgentBundle, emit: Emit, *,
                 interval: float = 1.0, backoff: Backoff | None = None) -> None:
        self.conn = conn
        self.node = conn.node.name
        self.bundle = bundle
        self.emit = emit
        self.interval = interval
        self.backoff = backoff or Backoff(initial=0.5, maximum=15.0)
        self.process: RemoteProcess | None = None
        self.attempts = 0
        self.agent_pid: int | None = None  # the running agent's pid on the node (its hello)
        # The last attempt's agent, being stopped while its `lost` is already shown: the next
        # attempt waits for it, so a node never runs two agents.
        self._stopping: asyncio.Future[None] | None = None

    def _status(self, status: NodeStatus, reason: str = "", message: str = "",
                retry_in: float | None = None) -> None:
        self.emit(AgentStatus(node=self.node, status=status, reason=reason, message=message,
                              retry_in=retry_in))

    def send(self, command: dict[str, object]) -> bool:
        """Write a command to the running agent; False when none is running."""
        if self.process is None:
            return False
        try:
            self.process.write(protocol.encode(command))
        except Exception:  # noqa: BLE001 - the reader will notice the dead stream
            return False
        return True

    def set_interval(self, seconds: float) -> None:
        self.interval = seconds
        self.send({"cmd": "interval", "seconds": seconds})

    async def run(self) -> None:
        """Keep the agent running until cancelled; emits `stopped` when cancelled."""
        try:
            while True:
                await self._stopped()
                self.attempts += 1
                self._status(NodeStatus.CONNECTING)
                try:
                    await self._attempt()
                    reason, message = "exited", "the agent ended"
                except _Ended as end:
                    reason, message = end.reason, end.message
                except ConnectError as exc:
                    reason, message = exc.reason, exc.detail
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # any failure is a lost node
                    log.debug("agent link %s failed", self.node, exc_info=True)
                    reason, message = "error", f"{type(exc).__name__}: {exc}"
                delay = round(self.backoff.next(), 2)  # what is shown is what is waited
                self._status(NodeStatus.LOST, reason, message, retry_in=delay)
                await asyncio.sleep(delay)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._stopped())
            self._status(NodeStatus.STOPPED)

    async def _stopped(self) -> None:
        stopping, self._stopping = self._stopping, None
        if stopping is not None:
            await stopping

    async def _attempt(self) -> None:
        timeout = self.conn.node.connect_timeout + START_GRACE
        try:
            await within(self._deploy(), timeout)
            cmd = deploy.start_command(self.conn.node.python, self.bundle,
                                       interval=self.interval, cluster_host=self.conn.node.host)
            process = await within(self.conn.start(cmd, stdin=True), timeout)
        except TimeoutError:
            # The pooled connection may be dead without knowing it: start afresh next time.
            await self._drop_connection()
            raise _Ended("timeout", f"no answer from {self.conn.node.address} "
                                    f"within {timeout:g} s") from None
        self.process = process
        self.agent_pid = None
        hung = False
        try:
            await self._read(process, first_timeout=timeout)
        except _Ended as end:
            hung = end.reason == "silent"
            raise
        finally:
            self.process = None
            # Stopped in the background: the `lost` status goes out now, not after the grace.
            self._stopping = asyncio.ensure_future(self._stop(process, self.agent_pid, hung))

    async def _deploy(self) -> None:
        try:
            await deploy.ensure(self.conn, self.bundle)
        except ConnectError:
            raise
        except OSError as exc:
            raise _Ended("deploy", f"cannot upload the agent: {exc}") from None

    async def _read(self, process: RemoteProcess, first_timeout: float) -> None:
        wait = first_timeout
        lines = LineFramer(process.readline)
        while True:
            try:
                got = await within(lines.next(), wait)
            except TimeoutError:
                raise _Ended("silent", f"no frame from the agent for {wait:g} s") from None
            received = time.time()
            if got.bad:
                self.emit(FrameRejected(
                    node=self.node, reason=got.bad, time=received, raw="",
                    message=f"a line of {got.size:,} characters (the limit is "
                            f"{protocol.MAX_LINE:,})" if got.bad == "too_long" else
                            "the stream ended inside a line"))
                if got.bad == "truncated":  # the stream's end
                    raise await self._ended(process)
                continue  # an oversize line is skipped; the link stays
            line = got.text
            if not line:
                raise await self._ended(process)
            raw = line.rstrip("\r\n")
            try:  # types and ranges: a bad frame never reaches the store
                frame, typed = read_frame(line)
            except protocol.FrameError as exc:
                self.emit(FrameRejected(node=self.node, reason=exc.reason, message=str(exc),
                                        raw=raw[:2000], time=received))
                continue
            event = FRAME_EVENTS[frame["type"]](node=self.node, frame=frame, typed=typed,
                                                raw=raw, time=received)
            match typed:
                case HelloFrame(pid=pid):
                    self.backoff.reset()
                    self.agent_pid = pid if isinstance(pid, int) and pid > 1 else None
                case SampleFrame(interval=float(interval)):  # within the protocol's range
                    self.interval = interval
            self.emit(event)
            wait = SILENT_INTERVALS * self.interval + 0.5

    async def _ended(self, process: RemoteProcess) -> _Ended:
        """Why the agent's stream ended: its exit status and last stderr line when known."""
        status: int | None = None
        with contextlib.suppress(Exception):
            status = await within(process.wait(), 2.0)
        err = ""
        with contextlib.suppress(Exception):
            err = (await within(process.stderr_text(), 1.0)).strip()
        last = err.splitlines()[-1] if err else ""
        if status is None:
            if not self.conn.connected:
                return _Ended("lost", f"connection to {self.conn.node.address} lost"
                              + (f": {last}" if last else ""))
            return _Ended("exited", "the agent was killed" + (f": {last}" if last else ""))
        if status == protocol.TOO_OLD_EXIT:  # the zipapp's own check of the node's Python
            found = last or "the node's Python is too old for the agent"
            return _Ended("python", f"{found}: {deploy.python_fix(self.node)}")
        return _Ended("exited", f"the agent exited with status {status}"
                      + (f": {last}" if last else ""))

    async def _stop(self, process: RemoteProcess, pid: int | None, hung: bool) -> None:
        """End the attempt's agent. A hung one (stopped by SIGSTOP, stuck in the kernel)
        reads no EOF and takes no SIGTERM or SIGHUP while stopped: it is killed by its pid,
        once the node confirms that pid is still this agent build."""
        if hung and pid is not None:
            script = (f"if ps -p {pid} -o command= 2>/dev/null | grep -q "
                      f"{quote(self.bundle.name)}; then kill -KILL {pid}; fi")
            with contextlib.suppress(Exception):
                await within(self.conn.run(script), 10.0)
        with contextlib.suppress(Exception):
            await within(process.stop(grace=2.0), 5.0)

    async def _drop_connection(self) -> None:
        with contextlib.suppress(Exception):
            await within(self.conn.close(), 5.0)
