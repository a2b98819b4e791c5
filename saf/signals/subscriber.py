"""The subscriber: a ZeroMQ SUB socket on one or more endpoints, drained into a sink.

Awaiting `recv()` once per frame on a `zmq.asyncio` socket costs a future and a trip through
the event loop per frame and tops out near 50,000 frames/s; past that the publisher drops
frames at its high-water mark. So the subscriber waits once (`poll`), then takes every queued
frame without blocking (`recv(zmq.NOBLOCK)` until `zmq.Again`) and hands the batch to the sink
in one call. A batch is capped so that a flood still yields to the event loop (the UI) between
batches.

Every message is at most `MAX_MESSAGE` bytes (`ZMQ_MAXMSGSIZE`): ZeroMQ builds a message whole
before handing it over and queues up to RCVHWM of them, so without a limit a publisher sending
large messages grew saf by gigabytes. Past the limit libzmq drops the message together with
the connection and, unlike after any other disconnect, does not reconnect; the subscriber tells
the two apart by that silence, counts the refusal (`Refused`, the book's bad frames,
`too_large`) and connects again.

Endpoints on nodes are reached through SSH port forwards (``ssh://NODE:PORT``), opened on the
fleet's connector for the node and closed with the subscriber.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence

import zmq
import zmq.asyncio
from zmq.utils.monitor import parse_monitor_message

from saf.connect.base import Forward
from saf.events import Emit, ignore
from saf.fleet import Fleet
from saf.inventory.model import Inventory
from saf.signals.endpoints import Endpoint, parse_endpoint
from saf.signals.events import SignalSourceState, SourceState

Sink = Callable[[list[bytes], int], None]
"""Called with a batch of raw frames and the time (ns since the epoch) they were received."""
Tick = Callable[[int], None]
Refused = Callable[[str, str, int], None]
"""Called with (reason, detail, time in ns) for a message refused before the sink saw it."""

BATCH = 1024  # frames per drain before yielding to the event loop (~1-3 ms of work)
RCVHWM = 200_000  # frames ZeroMQ may queue for us during a burst (about 20 MB at most)
# An AISignal is 48 bytes. 64 lets a frame a little off (another version's, a padding
# mistake) still arrive to be counted with its bytes as `size`, and keeps the queue's worst
# case near the 20 MB above: RCVHWM x (64 bytes + libzmq's ~64 bytes of message and malloc
# overhead) = about 26 MB, where 4 MiB messages reached 953 MB.
MAX_MESSAGE = 64
# A disconnect libzmq will retry shows its retry at once (checked on libzmq 4.3.5); one still
# silent after this long was a refused message.
DROP_SETTLE = 0.5
POLL_MS = 250  # how long to wait before ticking anyway (gaps are noticed in silence)

_MONITOR_STATES: dict[int, SourceState] = {
    zmq.EVENT_CONNECTED: "connected",
    zmq.EVENT_DISCONNECTED: "disconnected",
    zmq.EVENT_CONNECT_RETRIED: "retrying",
}


class Subscriber:
    def __init__(self, endpoints: Sequence[str | Endpoint], sink: Sink, *,
                 tick: Tick | None = None, refused: Refused | None = None,
                 inventory: Inventory | None = None,
                 fleet: Fleet | None = None, ssh: bool = False, emit: Emit = ignore,
                 batch: int = BATCH, rcvhwm: int = RCVHWM, poll_ms: int = POLL_MS,
                 context: zmq.asyncio.Context | None = None) -> None:
        if not endpoints:
            raise ValueError("a subscriber needs at least one endpoint")
        self.endpoints = [e if isinstance(e, Endpoint) else
                          parse_endpoint(e, inventory or (fleet.inventory if fleet else None),
                                         ssh=ssh) for e in endpoints]
        self.sink = sink
        self.tick = tick
        self.refused = refused
        self.dropped = 0  # connections libzmq dropped over an oversize message
        self._drops: dict[str, asyncio.TimerHandle] = {}
        self.emit = emit
        self.batch = batch
        self.rcvhwm = rcvhwm
        self.poll_ms = poll_ms
        self.inventory = inventory
        self._fleet = fleet
        self._own_fleet = False
        self._context = context
        self._forwards: list[Forward] = []
        self._sock: zmq.asyncio.Socket | None = None
        self._monitor_task: asyncio.Task[None] | None = None
        self._monitor: zmq.asyncio.Socket | None = None
        self._names: dict[str, str] = {}  # zmq url -> endpoint as the user wrote it
        self.received = 0
        self.batches = 0
        self.largest_batch = 0
        self.state: dict[str, SourceState] = {}  # endpoint -> last known state

    # -- setting up ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Open forwards and connect the socket; frames queue from here on."""
        zmq_context = self._context or zmq.asyncio.Context.instance()
        sock = zmq_context.socket(zmq.SUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVHWM, self.rcvhwm)
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE)
        sock.setsockopt(zmq.SUBSCRIBE, b"")
        sock.setsockopt(zmq.IPV6, 1)  # so tcp://[::1]:PORT works; IPv4 endpoints still do
        self._sock = sock
        monitor = sock.get_monitor_socket(zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED
                                          | zmq.EVENT_CONNECT_RETRIED)
        self._monitor = monitor
        self._monitor_task = asyncio.create_task(self._watch(monitor))
        for endpoint in self.endpoints:
            url = await self._reach(endpoint)
            self._names[url] = endpoint.text
            sock.connect(url)

    async def _reach(self, endpoint: Endpoint) -> str:
        if not endpoint.via_ssh:
            self._set_state(endpoint.text, "connecting")
            return endpoint.zmq_url()
        if self._fleet is None:
            if self.inventory is None:
                raise ValueError("ssh endpoints need an inventory or a fleet")
            self._fleet = Fleet(self.inventory)
            self._own_fleet = True
        assert endpoint.node is not None
        self._set_state(endpoint.text, "forwarding")
        forward = await self._fleet.connector(endpoint.node).forward(endpoint.port)
        self._forwards.append(forward)
        self._set_state(endpoint.text, "connecting",
                        f"through SSH: 127.0.0.1:{forward.local_port} -> "
                        f"{endpoint.node}:{endpoint.port}")
        return endpoint.zmq_url(forward.local_port)

    def _set_state(self, endpoint: str, state: SourceState, message: str = "") -> None:
        if self.state.get(endpoint) == state and not message:
            return
        self.state[endpoint] = state
        self.emit(SignalSourceState(endpoint=endpoint, state=state, message=message))

    async def _watch(self, monitor: zmq.asyncio.Socket) -> None:
        try:
            while True:
                event = parse_monitor_message(await monitor.recv_multipart())
                url = event["endpoint"].decode(errors="replace")
                pending = self._drops.pop(url, None)
                if pending is not None:
                    pending.cancel()  # libzmq is retrying: an ordinary disconnect
                if event["event"] == zmq.EVENT_DISCONNECTED:
                    self._drops[url] = asyncio.get_running_loop().call_later(
                        DROP_SETTLE, self._dropped, url)
                state = _MONITOR_STATES.get(event["event"])
                if state:
                    self._set_state(self._names.get(url, url), state)
        except (asyncio.CancelledError, zmq.ZMQError):
            pass  # close() closes the monitor, after disabling it (see there)

    def _dropped(self, url: str) -> None:
        """libzmq ended the session for a message past MAX_MESSAGE: count it, connect again."""
        self._drops.pop(url, None)
        if self._sock is None:
            return
        self.dropped += 1
        if self.refused is not None:
            self.refused("too_large", f"a message over {MAX_MESSAGE} bytes from "
                         f"{self._names.get(url, url)}", time.time_ns())
        with contextlib.suppress(zmq.ZMQError):
            self._sock.disconnect(url)
        self._sock.connect(url)

    # -- running ------------------------------------------------------------------------------

    async def run(self, *, until: Callable[[], bool] | None = None) -> None:
        """Receive until cancelled (or until `until()` is true after a batch)."""
        if self._sock is None:
            await self.open()
        try:
            await self._drain_loop(until)
        finally:
            await self.close()

    async def _drain_loop(self, until: Callable[[], bool] | None) -> None:
        sock = self._sock
        assert sock is not None
        # A plain (blocking-API) view of the same socket: recv(NOBLOCK) on it returns bytes at
        # once, where the asyncio socket would wrap every frame in a future.
        recv = zmq.Socket.shadow(sock.underlying).recv
        noblock, again = zmq.NOBLOCK, zmq.Again
        batch, sink, tick = self.batch, self.sink, self.tick
        poll_ms = self.poll_ms
        while True:
            if not await sock.poll(poll_ms):  # waits for POLLIN, the default
                if tick is not None:
                    tick(time.time_ns())
                if until is not None and until():
                    return
                continue
            frames: list[bytes] = []
            append = frames.append
            try:
                for _ in range(batch):
                    append(recv(noblock))
            except again:
                pass
            now = time.time_ns()
            if frames:
                self.received += len(frames)
                self.batches += 1
                if len(frames) > self.largest_batch:
                    self.largest_batch = len(frames)
                sink(frames, now)
            if tick is not None:
                tick(now)
            if until is not None and until():
                return
            if len(frames) == batch:
                await asyncio.sleep(0)  # a flood: let the rest of the app run

    async def close(self) -> None:
        # Stop the monitor while its PAIR socket is still open: libzmq sends it a last
        # "monitor stopped" event, and that send blocks the whole thread for good when the
        # PAIR end was closed first (it hung the cockpit on quit).
        if self._sock is not None and self._monitor is not None:
            with contextlib.suppress(zmq.ZMQError):
                self._sock.disable_monitor()
        for pending in self._drops.values():
            pending.cancel()
        self._drops.clear()
        if self._monitor_task is not None:
            self._monitor_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._monitor_task
            self._monitor_task = None
        if self._monitor is not None:
            self._monitor.close(0)
            self._monitor = None
        if self._sock is not None:
            self._sock.close(0)
            self._sock = None
            for name in self._names.values():
                self._set_state(name, "closed")
        for forward in self._forwards:
            with contextlib.suppress(Exception):
                await forward.close()
        self._forwards.clear()
        if self._own_fleet and self._fleet is not None:
            await self._fleet.close()
            self._fleet = None

    async def __aenter__(self) -> Subscriber:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
