"""A cockpit's end of `saf serve`'s hub: the metrics source, the node actions and the signal
feed of a hub-fed cockpit (`saf tui --hub SOCKET`), all over one connection to the hub's
UNIX socket (see saf.serve.wire).

    link = HubLink.connect(socket_path, token=os.environ.get("SAF_HUB_TOKEN"))
    link.hello.cluster, link.hello.nodes, link.hello.readonly      # known before the app runs
    source = link.source(emit)      # a MetricsSource: start() / stop() / store
    actions = link.actions()        # NodeActions: each of its actions asks the hub
    link.run_recipe(plan, show, ask_password)   # a recipe run on the hub's fleet
    feed = link.signal_feed()       # a SignalFeed whose frames come from the hub

`connect` is blocking (it runs before the app's event loop exists, which needs the cluster's
nodes to build); the rest runs on the app's loop. When the hub goes away every node turns
lost with the reason `hub`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import struct
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from saf.deadline import within
from saf.errors import SafError
from saf.events import Emit, UnknownEvent, ignore
from saf.inventory.model import Node
from saf.metrics.events import AgentStatus, NodeStatus
from saf.metrics.store import MetricsStore
from saf.recipe import events as recipe_events
from saf.recipe.run import RunPlan
from saf.recipe.runner import AskPassword
from saf.recording import header_node, parse_event
from saf.serve import wire
from saf.serve.messages import (
    AgentEvent,
    AskForPassword,
    BadMessage,
    RecipeEvent,
    Reply,
    SignalState,
    decode_hello,
    decode_message,
)
from saf.serve.requests import (
    BringPart,
    Cancel,
    ClientHello,
    Password,
    Request,
    RestartPart,
    RunRecipe,
    SignalNode,
    Signals,
)
from saf.signals.book import SignalBook
from saf.signals.events import SignalSourceState
from saf.signals.feed import SignalFeed

if TYPE_CHECKING:
    from saf.up.part import Kind, Verb

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0
REQUEST_TIMEOUT = 30.0
TICK_S = 0.25  # how often the client's signal book looks at the clock in silence


class HubError(SafError):
    """The hub could not be reached, or said no."""


@dataclass(frozen=True)
class HubHello:
    cluster: str
    nodes: tuple[Node, ...]
    inventory: str | None
    readonly: str | None
    interval: float
    signals: str | None
    signals_error: str | None


def _parse_hello(data: dict[str, Any]) -> HubHello:
    # The version first: another version's hello may not fit this one's type.
    if data.get("saf_hub") != wire.VERSION:
        raise HubError(f"not a saf hub (or another version): {data.get('saf_hub')!r}")
    try:
        hello = decode_hello(data)
    except BadMessage as exc:
        raise HubError(str(exc)) from None
    if hello.error is not None:
        raise HubError(f"the hub refused this cockpit: {hello.error}")
    nodes = tuple(header_node(n) for n in hello.nodes)
    return HubHello(cluster=hello.cluster or "saf", nodes=nodes,
                    inventory=hello.inventory or None, readonly=hello.readonly or None,
                    interval=hello.interval or 1.0, signals=hello.signals,
                    signals_error=hello.signals_error)


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise HubError("the hub closed the connection before saying hello")
        chunks += chunk
    return bytes(chunks)


RunMessage = RecipeEvent | AskForPassword | Reply  # what a recipe run's queue is given


class HubLink:
    def __init__(self, sock: socket.socket, hello: HubHello) -> None:
        self._sock: socket.socket | None = sock
        self.hello = hello
        self.store = MetricsStore()
        for node in hello.nodes:
            self.store.add_node(node.name)
        self._emit: Emit = ignore
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._replies: dict[int, asyncio.Future[Reply]] = {}
        self._runs: dict[int, asyncio.Queue[RunMessage | None]] = {}
        # Messages from the hub not understood, by what was wrong: passed over, never fatal.
        self.bad_messages: Counter[str] = Counter()
        self._ids = itertools.count(1)
        self._feed: SignalFeed | None = None
        self._signal_queue: asyncio.Queue[tuple[list[bytes], int] | None] | None = None
        self._wants_signals = False
        self.closed = False

    @classmethod
    def connect(cls, path: str | Path, *, token: str | None = None,
                timeout: float = CONNECT_TIMEOUT) -> HubLink:
        """Reach the hub and read its hello (blocking)."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
            sock.sendall(wire.pack_struct(ClientHello(hello=wire.VERSION, token=token)))
            kind, size = wire.HEADER.unpack(_recv_exactly(sock, wire.HEADER.size))
            if kind != wire.JSON or size > wire.MAX_PAYLOAD:
                raise HubError("the hub's first message is not its hello")
            hello = _parse_hello(wire.decode_json(_recv_exactly(sock, size)))
        except OSError as exc:
            sock.close()
            raise HubError(f"cannot reach saf serve's hub at {path}: "
                           f"{exc.strerror or exc}") from None
        except (HubError, wire.WireError, struct.error):
            sock.close()
            raise
        sock.settimeout(None)
        sock.setblocking(False)
        return cls(sock, hello)

    # -- the metrics source (MetricsSource) -------------------------------------------------
    def source(self, emit: Emit) -> HubLink:
        self._emit = emit
        return self

    async def start(self) -> None:
        if self._task is not None or self._sock is None:
            return
        reader, self._writer = await asyncio.open_unix_connection(sock=self._sock)
        self._sock = None
        if self._wants_signals:
            self._writer.write(wire.pack_struct(Signals()))
        self._task = asyncio.create_task(self._read(reader), name="hub-link")

    async def stop(self) -> None:
        self.closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._signal_queue is not None:
            self._signal_queue.put_nowait(None)

    def _deliver(self, data: dict[str, Any]) -> None:
        try:
            event = parse_event(data)
        except (ValueError, TypeError, KeyError) as exc:
            self.bad_messages["event"] += 1
            log.warning("hub link: an event not understood: %s", exc)
            return
        self.store.apply(event)
        try:
            self._emit(event)
        except Exception:  # the consumer's bug must not end the link
            log.exception("hub link: consumer failed on %s", event.kind)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        why = "saf serve stopped"
        try:
            while True:
                message = await wire.read_message(reader)
                if message is None:
                    break
                kind, body = message
                if kind == wire.SIGNALS:
                    if self._signal_queue is not None:
                        self._signal_queue.put_nowait(wire.unpack_signals(body))
                    continue
                self._dispatch(body)
        except (wire.WireError, ConnectionError) as exc:
            why = f"the hub connection broke: {exc}"
        self.closed = True
        for future in self._replies.values():
            if not future.done():
                future.set_exception(HubError(why))
        self._replies.clear()
        for queue in self._runs.values():
            queue.put_nowait(None)
        for node in self.hello.nodes:
            self._deliver(AgentStatus(node=node.name, status=NodeStatus.LOST, reason="hub",
                                      message=why).to_json())
        if self._signal_queue is not None:
            self._signal_queue.put_nowait(None)

    def _dispatch(self, body: bytes) -> None:
        """The client's gate: a JSON message from the hub decoded once into its type and
        handed on; one not understood is counted and passed over."""
        try:
            message = decode_message(body)
        except BadMessage as bad:
            self.bad_messages["malformed"] += 1
            log.warning("hub link: %s", bad)
            return
        except msgspec.DecodeError as exc:  # not JSON at all: the stream is not the hub's
            raise wire.WireError(f"not JSON: {exc}") from None
        match message:
            case AgentEvent(event=event):
                self._deliver(event)
            case RecipeEvent(req=req) | AskForPassword(req=req) | Reply(req=req) \
                    if req in self._runs:
                self._runs[req].put_nowait(message)
            case Reply(req=req):
                future = self._replies.pop(req, None) if req is not None else None
                if future is not None and not future.done():
                    future.set_result(message)
            case SignalState(endpoint=endpoint, state=state, message=text):
                if self._feed is not None:
                    self._feed.on_event(SignalSourceState(endpoint=endpoint, state=state,
                                                          message=text))
            case RecipeEvent() | AskForPassword():
                pass  # a run this cockpit already left (cancelled, or its reply came)

    async def _request(self, request: Callable[[int], Request]) -> Reply:
        """Send `request(id)` and wait for the hub's reply to that id."""
        if self._writer is None or self.closed:
            raise HubError("not connected to saf serve's hub")
        req = next(self._ids)
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._replies[req] = future
        self._writer.write(wire.pack_struct(request(req)))
        return await within(future, REQUEST_TIMEOUT)

    # -- recipe runs (saf.cockpit.context.RecipeRunner) -------------------------------------
    async def run_recipe(self, plan: RunPlan, show: Emit,
                         ask_password: AskPassword | None = None) -> str:
        """Run `plan` on the hub's fleet: its events reach `show` as they happen, a password
        it needs is asked with `ask_password`; the run's final status. Cancelling this
        cancels the run on the hub (which stops every remote command)."""
        recipe = plan.recipe
        return await self._stream(lambda req: RunRecipe(
            req=req, recipe=str(recipe.path) if recipe.path is not None else recipe.name,
            overrides=dict(plan.overrides), selector=plan.selector, check=plan.check,
            start_step=plan.start_step, resumed_from=plan.resumed_from), show, ask_password)

    async def bring_part(self, verb: Verb, kind: Kind, node: str, name: str, show: Emit,
                         ask_password: AskPassword | None = None) -> str:
        """Bring one declared part up or down on the hub's fleet (saf.up.part), shown and
        cancelled as `run_recipe`'s run is; the run's final status."""
        return await self._stream(lambda req: BringPart(
            req=req, verb=verb, kind=kind, node=node, name=name),
            show, ask_password)

    async def _stream(self, request: Callable[[int], Request], show: Emit,
                      ask_password: AskPassword | None) -> str:
        """Send `request(id)`, then hand the run's events to `show` and its password asks to
        `ask_password` until the hub's reply (an error reply raises HubError)."""
        if self._writer is None or self.closed:
            raise HubError("not connected to saf serve's hub")
        req = next(self._ids)
        queue: asyncio.Queue[RunMessage | None] = asyncio.Queue()
        self._runs[req] = queue
        self._writer.write(wire.pack_struct(request(req)))
        try:
            while True:
                item = await queue.get()
                if item is None:
                    raise HubError("the connection to saf serve's hub was lost during the run")
                match item:
                    case RecipeEvent(event=data):
                        try:
                            event = recipe_events.from_json(data)
                        except UnknownEvent:
                            continue  # a newer hub's event: this saf does not show it
                        except (ValueError, TypeError, KeyError) as exc:
                            self.bad_messages["recipe_event"] += 1
                            log.warning("hub link: a recipe event not understood: %s", exc)
                            continue
                        show(event)
                    case AskForPassword(ask=ask, prompt=prompt):
                        password = await ask_password(prompt or "password") \
                            if ask_password else None
                        if self._writer is not None:
                            self._writer.write(wire.pack_struct(Password(
                                req=req, ask=ask, password=password)))
                    case Reply(ok=ok, message=message):
                        if not ok:
                            raise HubError(message or "the hub refused the run")
                        return message
        except asyncio.CancelledError:
            if self._writer is not None and not self.closed:
                self._writer.write(wire.pack_struct(Cancel(req=req)))
            raise
        finally:
            self._runs.pop(req, None)

    # -- node actions (NodeActions) ---------------------------------------------------------
    def actions(self) -> HubActions:
        return HubActions(self)

    # -- the signal feed --------------------------------------------------------------------
    def signal_feed(self) -> SignalFeed:
        """A feed whose book is filled with the frames the hub relays (asked for on first
        use, so cockpits that never open the Signals screen are not sent them)."""
        if self._feed is not None:
            return self._feed
        book = SignalBook()
        self._signal_queue = asyncio.Queue()

        async def source(feed: SignalFeed) -> None:
            queue = self._signal_queue
            assert queue is not None
            self._wants_signals = True
            if self._writer is not None:
                self._writer.write(wire.pack_struct(Signals()))
            while True:
                try:
                    item = await within(queue.get(), TICK_S)
                except TimeoutError:
                    book.tick(time.time_ns())
                    continue
                if item is None:
                    return
                frames, recv_ns = item
                book.add_many(frames, recv_ns)
                book.tick(recv_ns)

        label = f"{self.hello.signals or 'no signal source'} (through saf serve)"
        self._feed = SignalFeed(book, label, source=source)
        if self.hello.signals_error:
            self._feed.error = self.hello.signals_error
        return self._feed


class HubActions:
    """Node actions asked of the hub, which checks the session's rights and does them."""

    def __init__(self, link: HubLink) -> None:
        self.link = link

    async def signal(self, node: str, pid: int, signal: str) -> str:
        answer = await self.link._request(
            lambda req: SignalNode(req=req, node=node, pid=int(pid), signal=signal))
        if not answer.ok:
            raise HubError(answer.message or "the hub refused")
        return answer.message

    async def restart_part(self, node: str, kind: str, name: str, port: int = 0) -> str:
        answer = await self.link._request(
            lambda req: RestartPart(req=req, node=node, kind=kind, name=name, port=port))
        if not answer.ok:
            raise HubError(answer.message or "the hub refused")
        return answer.message

    async def bring_part(self, verb: Verb, kind: Kind, node: str, name: str, show: Emit,
                         ask_password: AskPassword | None = None) -> str:
        return await self.link.bring_part(verb, kind, node, name, show, ask_password)
