"""The hub of `saf serve`: one process owns the fleet, one agent link per node and the signal
subscription, and feeds every face from them.

    hub = Hub(inventory, readonly=False, interval=1.0)
    await hub.start()              # agents start, the local socket listens
    ...                            # faces run (saf.serve.faces)
    await hub.stop()               # clients dropped, agents stopped, socket removed

What a face reads (in this process, on the event loop):

- `hub.store`: the `MetricsStore` every agent event lands in first (`saf.metrics.store`);
  `hub.store.nodes`, `hub.store.node(name)` (status, last sample, hello), `hub.store.value(...)`.
- `hub.subscribe(emit)`: `emit(event)` for every agent event after the store has it
  (`saf.metrics.events`); returns the function that unsubscribes.
- `hub.signal_feed`: the hub's own `SignalFeed`; `hub.signal_feed.book.snapshot(now_ns)` has
  rates, latencies and bad frames by reason.
- `hub.nodes`, `hub.cluster`, `hub.inventory`, `hub.readonly_reason`, `hub.clients` (cockpits
  connected now).

What a face starts (a cockpit per terminal, fed from this hub over its socket):

- `hub.socket_path`: the UNIX socket (0600, in a 0700 folder of saf's state) carrying the
  frames of `saf.serve.wire`.
- `hub.cockpit_argv(token)`: the command line of a hub-fed cockpit,
  `python -m saf tui --hub SOCKET`; `hub.cockpit_env(token)` the environment it needs.
  `token` comes from `hub.grant(readonly=..., who=...)` and is given back with
  `hub.revoke(token)`: it tells the hub which session a cockpit belongs to, so a read-only key
  gets a read-only cockpit whose actions the hub refuses too. A face that cannot hand each
  client its own environment (textual-serve) passes no token: the server's `--readonly` rules.

Node actions from any cockpit come here (`hub.signal`, or a client's `signal` request; a
client's `recipe` request runs a recipe on the hub's fleet, streaming its events back; its
`part` request brings one declared part up or down, saf.up.part, as such a run) and are
refused when the server or the session is read-only (a recipe's `--check` is allowed).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import secrets
import shutil
import sys
import tempfile
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from saf.agentlink.build import AgentBundle
from saf.agentlink.node_links import NodeLinks
from saf.cockpit.actions import FleetActions
from saf.cockpit.context import READONLY_FLAG
from saf.deadline import within
from saf.events import Emit, Event
from saf.fleet import Fleet
from saf.inventory.model import Inventory, Node
from saf.metrics.events import AgentStatus, HelloReceived, SampleReceived
from saf.paths import private_dir, state_dir
from saf.recording import event_line, node_header
from saf.serve import requests, wire
from saf.serve.messages import AskForPassword, HubHello, RecipeEvent, Reply, SignalState, event_text
from saf.signals.book import SignalBook
from saf.signals.events import SignalSourceState
from saf.signals.feed import SignalFeed

if TYPE_CHECKING:
    from saf.recipe.runner import AskPassword

log = logging.getLogger(__name__)

HISTORY = 120            # samples per node a cockpit that connects late is given at once
SEND_LIMIT = 8 << 20     # bytes queued for one client before it is dropped as too slow
SIGNAL_SKIP = 1 << 20    # bytes queued for one client past which signal batches skip it
HELLO_TIMEOUT = 10.0     # seconds a client has to say hello
SOCKET_PATH_MAX = 100    # sun_path holds 108 bytes; keep clear of it
KEY_READONLY = "the SSH key is marked read-only"


@dataclass(frozen=True)
class Grant:
    """A session's rights, handed to its cockpit as a token."""

    readonly: bool
    who: str


STOP_WAIT = 15.0  # seconds each part of stopping may take


class HubClient:
    """One connected cockpit, as the hub sees it."""

    def __init__(self, writer: asyncio.StreamWriter, who: str, readonly_reason: str | None):
        self.writer = writer
        self.who = who
        self.readonly_reason = readonly_reason
        self.wants_signals = False
        self.signals_skipped = 0  # frames not sent because the client was behind
        self.closed = False
        self.runs: dict[int, asyncio.Task[Any]] = {}      # recipe runs by request id
        self.asks: dict[tuple[int, int], asyncio.Future[str | None]] = {}  # passwords awaited

    def send(self, data: bytes) -> bool:
        """Queue `data`; False (and the client closed) when it is too far behind."""
        if self.closed:
            return False
        transport = self.writer.transport
        if transport.is_closing():
            self.closed = True
            return False
        if transport.get_write_buffer_size() > SEND_LIMIT:
            log.warning("hub: dropping %s: more than %d bytes behind", self.who, SEND_LIMIT)
            self.close()
            return False
        self.writer.write(data)
        return True

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.writer.close()


def default_socket_path() -> Path:
    """hub-PID.sock in saf's private state folder, or in a private temporary folder when that
    path is too long for a UNIX socket."""
    path = private_dir(state_dir() / "serve") / f"hub-{os.getpid()}.sock"
    if len(os.fsencode(path)) <= SOCKET_PATH_MAX:
        return path
    return Path(tempfile.mkdtemp(prefix="saf-hub-")) / "hub.sock"


class Hub:
    def __init__(self, inventory: Inventory, *, readonly: bool = False, interval: float = 1.0,
                 socket_path: Path | None = None, signals: bool = True,
                 bundle: AgentBundle | None = None) -> None:
        self.inventory = inventory
        self.cluster = inventory.cluster.name
        self.nodes: tuple[Node, ...] = tuple(inventory.nodes)
        self.readonly_reason: str | None = READONLY_FLAG if readonly else None
        self.interval = interval
        self.fleet = Fleet(inventory)
        self.metrics = NodeLinks(self.fleet, self.nodes, self._on_event, interval=interval,
                                  bundle=bundle)
        self.store = self.metrics.store
        self.actions = FleetActions(self.fleet)
        self.signal_feed = self._make_signal_feed() if signals else None
        self._socket_path = socket_path
        self._own_socket_dir: Path | None = None
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._subscribers: list[Emit] = []
        self._grants: dict[str, Grant] = {}
        self.clients: set[HubClient] = set()
        self.bad_requests: Counter[str] = Counter()  # clients' requests not understood, by reason
        # What a cockpit that connects late is sent first: per node its agent's hello, its
        # latest samples and its status now.
        self._hello: dict[str, str] = {}
        self._status: dict[str, str] = {}
        self._samples: dict[str, deque[str]] = {n.name: deque(maxlen=HISTORY)
                                                for n in self.nodes}
        self._signal_states: dict[str, SignalState] = {}
        self.started = False

    # -- life -------------------------------------------------------------------------------
    @property
    def socket_path(self) -> Path:
        if self._socket_path is None:
            self._socket_path = default_socket_path()
            if self._socket_path.parent.name.startswith("saf-hub-"):
                self._own_socket_dir = self._socket_path.parent
        return self._socket_path

    async def start(self) -> None:
        """Listen on the socket, start every node's agent and the signal subscription."""
        if self.started:
            return
        self.started = True
        path = self.socket_path
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # a socket left by a saf that died with this pid
        self._server = await asyncio.start_unix_server(self._serve_client, path=str(path))
        os.chmod(path, 0o600)
        await self.metrics.start()
        if self.signal_feed is not None:
            self._spawn(self.signal_feed.run(), "hub-signals")
        log.info("hub: %d nodes, socket %s", len(self.nodes), path)

    async def stop(self) -> None:
        """Drop every client, stop every agent, close the fleet, remove the socket."""
        if self._server is not None:
            self._server.close()
        for client in list(self.clients):
            client.close()
        tasks, self._tasks = list(self._tasks), set()
        for task in tasks:
            task.cancel()
        # Every wait is bounded: a stop that could hang would keep `saf serve` (and its
        # port and socket) alive after Ctrl-C.
        if tasks:
            await asyncio.wait(tasks, timeout=STOP_WAIT)
        for what, stopping in (("agents", self.metrics.stop), ("fleet", self.fleet.close)):
            # asyncio.wait, not within: within would wait again for what it cancels.
            part = asyncio.ensure_future(stopping())
            done, _ = await asyncio.wait({part}, timeout=STOP_WAIT)
            if not done:
                part.cancel()
                log.warning("hub: stopping the %s took over %g s; left behind", what, STOP_WAIT)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await within(self._server.wait_closed(), 2)
            self._server = None
        if self._socket_path is not None:
            with contextlib.suppress(FileNotFoundError):
                self._socket_path.unlink()
        if self._own_socket_dir is not None:
            shutil.rmtree(self._own_socket_dir, ignore_errors=True)

    async def __aenter__(self) -> Hub:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(lambda done: self._tasks.discard(done))

    # -- for faces --------------------------------------------------------------------------
    def subscribe(self, emit: Emit) -> Callable[[], None]:
        """Call `emit(event)` for every agent event from now on (after the store has it)."""
        self._subscribers.append(emit)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._subscribers.remove(emit)
        return unsubscribe

    def grant(self, *, readonly: bool, who: str) -> str:
        """A token for one session's cockpit (see `cockpit_env`)."""
        token = secrets.token_urlsafe(24)
        self._grants[token] = Grant(readonly=readonly, who=who)
        return token

    def revoke(self, token: str) -> None:
        self._grants.pop(token, None)

    def cockpit_argv(self, token: str | None = None) -> list[str]:
        """The command line of a cockpit fed from this hub. `-P`: the installed saf, never a
        `saf/` folder in the working directory (`-m` would put that first on the path)."""
        return [sys.executable, "-P", "-m", "saf", "tui", "--hub", str(self.socket_path)]

    def cockpit_env(self, token: str | None = None) -> dict[str, str]:
        """What to add to a hub-fed cockpit's environment."""
        return {"SAF_HUB_TOKEN": token} if token else {}

    def session_readonly(self, grant: Grant | None) -> str | None:
        """Why a session's node actions are off (the server's reason first), or None."""
        if self.readonly_reason is not None:
            return self.readonly_reason
        if grant is not None and grant.readonly:
            return KEY_READONLY
        return None

    async def signal(self, node: str, pid: int, signal: str, *,
                     readonly_reason: str | None = None) -> str:
        """Signal a process on a node, unless the server or the session is read-only."""
        reason = readonly_reason or self.readonly_reason
        if reason is not None:
            raise PermissionError(f"sending {signal} is disabled: {reason}")
        if node not in {n.name for n in self.nodes}:
            raise ValueError(f"no node {node!r} in this cluster")
        return await self.actions.signal(node, pid, signal)

    async def restart_part(self, node: str, kind: str, name: str, port: int = 0, *,
                           readonly_reason: str | None = None) -> str:
        """Restart a declared part on a node, unless the server or the session is read-only."""
        reason = readonly_reason or self.readonly_reason
        if reason is not None:
            raise PermissionError(f"restarting {kind} {name} is disabled: {reason}")
        if node not in {n.name for n in self.nodes}:
            raise ValueError(f"no node {node!r} in this cluster")
        return await self.actions.restart_part(node, kind, name, port)

    # -- events in --------------------------------------------------------------------------
    def _on_event(self, event: Event) -> None:
        """From the metrics hub, after the store applied it: remember, relay, tell faces."""
        node = getattr(event, "node", None)
        line = event_line(event)
        if isinstance(node, str):
            if isinstance(event, SampleReceived):
                self._samples.setdefault(node, deque(maxlen=HISTORY)).append(line)
            elif isinstance(event, HelloReceived):
                self._hello[node] = line
                self._samples.setdefault(node, deque(maxlen=HISTORY)).clear()
            elif isinstance(event, AgentStatus):
                self._status[node] = line
        self._broadcast(wire.pack_json_text(event_text(line)))
        for emit in list(self._subscribers):
            try:
                emit(event)
            except Exception:  # a face's bug must not stop the others
                log.exception("hub: a face failed on %s", event.kind)

    def _broadcast(self, data: bytes, *, signals: bool = False, frames: int = 0) -> None:
        """`data` to every client (with `signals`, to those that asked for the stream; a
        client already `SIGNAL_SKIP` bytes behind misses this batch rather than fall further
        behind, and the frames are counted in its `signals_skipped`)."""
        for client in list(self.clients):
            if signals:
                if not client.wants_signals:
                    continue
                if client.writer.transport.get_write_buffer_size() > SIGNAL_SKIP:
                    client.signals_skipped += frames
                    continue
            if not client.send(data):
                self.clients.discard(client)

    def _make_signal_feed(self) -> SignalFeed:
        from saf.signals.config import signals_config

        try:
            config = signals_config(self.inventory)
        except Exception as exc:  # noqa: BLE001 - a bad [signals] table: shown, not fatal
            feed = SignalFeed(SignalBook(), "no signal source")
            feed.error = str(exc)
            return feed
        book = SignalBook(config.book_settings())
        endpoints = list(config.endpoints)

        def sink(frames: list[bytes], recv_ns: int) -> None:
            book.add_many(frames, recv_ns)
            if any(c.wants_signals for c in self.clients):
                self._broadcast(wire.pack_signals(frames, recv_ns), signals=True,
                                frames=len(frames))

        def on_state(event: Event) -> None:
            feed.on_event(event)
            if isinstance(event, SignalSourceState):
                state = SignalState(endpoint=event.endpoint, state=event.state,
                                    message=event.message)
                self._signal_states[event.endpoint] = state
                self._broadcast(wire.pack_struct(state), signals=True)

        async def source(feed: SignalFeed) -> None:
            from saf.signals.subscriber import Subscriber

            await Subscriber(endpoints, sink, tick=book.tick, refused=book.refused,
                             inventory=self.inventory,
                             fleet=self.fleet, ssh=config.ssh, emit=on_state).run()

        feed = SignalFeed(book, " ".join(endpoints), source=source)
        return feed

    # -- the local socket -------------------------------------------------------------------
    def _hello_message(self, readonly: str | None) -> HubHello:
        feed = self.signal_feed
        return HubHello(saf_hub=wire.VERSION, cluster=self.cluster,
                        nodes=[node_header(n) for n in self.nodes],
                        inventory=str(self.inventory.path) if self.inventory.path else None,
                        readonly=readonly, interval=self.interval,
                        signals=feed.label if feed is not None else None,
                        signals_error=feed.error if feed is not None else "no signal feed")

    def _backlog(self) -> list[bytes]:
        out: list[bytes] = []
        for node in self.nodes:
            name = node.name
            if name in self._hello:
                out.append(wire.pack_json_text(event_text(self._hello[name])))
            out.extend(wire.pack_json_text(event_text(line))
                       for line in self._samples.get(name, ()))
            if name in self._status:
                out.append(wire.pack_json_text(event_text(self._status[name])))
        return out

    async def _serve_client(self, reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter) -> None:
        client: HubClient | None = None
        try:
            message = await within(wire.read_message(reader), HELLO_TIMEOUT)
            if message is None or message[0] != wire.JSON:
                return
            try:
                token = requests.decode_hello(wire.decode_json(message[1])).token
            except requests.BadRequest as bad:
                self.bad_requests[bad.reason] += 1
                writer.write(wire.pack_struct(HubHello(saf_hub=wire.VERSION, error=str(bad))))
                return
            grant = self._grants.get(token) if token is not None else None
            if token is not None and grant is None:
                writer.write(wire.pack_struct(HubHello(saf_hub=wire.VERSION,
                                                       error="unknown session token")))
                return
            readonly = self.session_readonly(grant)
            who = grant.who if grant is not None else "a local cockpit"
            client = HubClient(writer, who, readonly)
            writer.write(wire.pack_struct(self._hello_message(readonly)))
            for data in self._backlog():
                writer.write(data)
            self.clients.add(client)
            log.debug("hub: %s connected", who)
            while True:
                message = await wire.read_message(reader)
                if message is None:
                    break
                if message[0] != wire.JSON:
                    raise wire.WireError("a client sent a signal batch")
                self._request(client, wire.decode_json(message[1]))
        except (TimeoutError, wire.WireError, ConnectionError) as exc:
            log.warning("hub: a client was dropped: %s", exc)
        finally:
            if client is not None:
                self.clients.discard(client)
                client.close()
                for run in client.runs.values():  # its runs stop with it
                    run.cancel()
            else:
                writer.close()

    def _request(self, client: HubClient, data: dict[str, Any]) -> None:
        """The hub's gate for a client's requests: decoded once into their types, and a
        request not understood is answered with an error and counted, never raised."""
        try:
            request = requests.decode_request(data)
        except requests.BadRequest as bad:
            self.bad_requests[bad.reason] += 1
            log.warning("hub: %s: %s", client.who, bad)
            client.send(wire.pack_struct(Reply(req=bad.req, ok=False, message=str(bad))))
            return
        match request:
            case requests.Signals():
                client.wants_signals = True
                for state in self._signal_states.values():
                    client.send(wire.pack_struct(state))
            case requests.SignalNode():
                self._spawn(self._signal_request(client, request), "hub-signal")
            case requests.RestartPart():
                self._spawn(self._restart_request(client, request), "hub-restart")
            case requests.RunRecipe():
                self._spawn(self._recipe_request(client, request), "hub-recipe")
            case requests.BringPart():
                self._spawn(self._part_request(client, request), "hub-part")
            case requests.Password(req=req, ask=ask, password=password):
                future = client.asks.pop((req, ask), None)
                if future is not None and not future.done():
                    future.set_result(password)
            case requests.Cancel(req=req):
                run = client.runs.get(req)
                if run is not None:
                    run.cancel()

    async def _signal_request(self, client: HubClient, request: requests.SignalNode) -> None:
        try:
            message = await self.signal(request.node, request.pid, request.signal,
                                        readonly_reason=client.readonly_reason)
            ok = True
            log.info("hub: %s: %s", client.who, message)
        except (PermissionError, ValueError) as exc:
            ok, message = False, str(exc)
        except Exception as exc:  # noqa: BLE001 - a node's failure, told to the cockpit
            ok, message = False, f"{type(exc).__name__}: {exc}"
        client.send(wire.pack_struct(Reply(req=request.req, ok=ok, message=message)))

    async def _restart_request(self, client: HubClient, request: requests.RestartPart) -> None:
        from saf.errors import SafError

        try:
            message = await self.restart_part(request.node, request.kind, request.name,
                                              request.port,
                                              readonly_reason=client.readonly_reason)
            ok = True
            log.info("hub: %s: %s", client.who, message)
        except (PermissionError, ValueError, SafError) as exc:
            ok, message = False, str(exc)
        except Exception as exc:  # noqa: BLE001 - a node's failure, told to the cockpit
            ok, message = False, f"{type(exc).__name__}: {exc}"
        client.send(wire.pack_struct(Reply(req=request.req, ok=ok, message=message)))

    async def _recipe_request(self, client: HubClient, request: requests.RunRecipe) -> None:
        """Run a recipe on the hub's fleet for a cockpit (a read-only session may check)."""
        from saf.recipe import library
        from saf.recipe.run import RunPlan, run_recipe

        async def body(show: Emit, ask_password: AskPassword) -> str:
            recipe = library.load(request.recipe)
            plan = RunPlan(recipe, dict(request.overrides), request.selector, request.check,
                           request.start_step, request.resumed_from)
            log.info("hub: %s runs recipe %s%s", client.who, recipe.name,
                     " (check)" if request.check else "")
            return await run_recipe(plan, self.fleet, show, ask_password=ask_password)

        await self._run_for(client, request.req, body,
                            None if request.check else "running a recipe")

    async def _part_request(self, client: HubClient, request: requests.BringPart) -> None:
        """Bring one declared part up or down for a cockpit (saf.up.part), as a run."""
        from saf.up.part import bring_part, describe

        what = describe(request.verb, request.kind, request.node, request.name)

        async def body(show: Emit, ask_password: AskPassword) -> str:
            log.info("hub: %s brings %s", client.who, what)
            return await bring_part(self.fleet, request.verb, request.kind, request.node,
                                    request.name, show, ask_password=ask_password)

        await self._run_for(client, request.req, body, f"bringing {what}")

    async def _run_for(self, client: HubClient, req: int,
                       body: Callable[[Emit, AskPassword], Awaitable[str]],
                       changes: str | None) -> None:
        """A run for a cockpit on the hub's fleet: its events go back as they happen, a
        password it needs is asked of the cockpit, and it ends with the reply. `changes`
        names what it changes, refused to a read-only session (None: it changes nothing)."""
        from saf.errors import SafError

        task = asyncio.current_task()
        assert task is not None
        client.runs[req] = task
        asks = itertools.count(1)

        def show(event: Event) -> None:
            client.send(wire.pack_struct(RecipeEvent(req=req, event=event.to_json())))

        async def ask_password(prompt: str) -> str | None:
            number = next(asks)
            future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
            client.asks[(req, number)] = future
            client.send(wire.pack_struct(AskForPassword(req=req, ask=number, prompt=prompt)))
            try:
                return await future
            finally:
                client.asks.pop((req, number), None)

        ok, message = False, ""
        try:
            if changes is not None and client.readonly_reason is not None:
                raise PermissionError(f"{changes} is disabled: {client.readonly_reason}")
            message = await body(show, ask_password)
            ok = True
        except asyncio.CancelledError:
            message = "cancelled"
            raise
        except (SafError, PermissionError, ValueError) as exc:
            message = str(exc)
        except Exception as exc:  # noqa: BLE001 - told to the cockpit, the hub goes on
            message = f"{type(exc).__name__}: {exc}"
        finally:
            client.runs.pop(req, None)
            client.send(wire.pack_struct(Reply(req=req, ok=ok, message=message)))
