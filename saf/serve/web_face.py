"""The browser face of `saf serve --web HOST:PORT`: the cockpit in a web page.

textual-serve (the Textual project's own package) serves a page that draws a terminal in the
browser and, per browser tab, runs one cockpit process, `saf tui --hub SOCKET` with Textual's
web driver, fed from the hub like every other cockpit: however many tabs are open, each node
runs one agent. The hub's `--readonly` rules every tab (textual-serve gives every process the
same environment, so there is no per-tab grant).

saf runs textual-serve's aiohttp application on the hub's own event loop (its `serve()` would
take the loop over) and adds what a server reachable from a browser needs:

- the page's websocket address is the one the browser used (its Host header), so it works
  through an SSH port forward or a tailnet name without a `public_url` setting;
- every request (the page, its files, the websocket) whose Host is not a name the server is
  reachable by is refused (DNS rebinding: a page of evil.example whose name comes to point at
  this server): the bind address (on 0.0.0.0 or ::, every address and name of this machine;
  on loopback, the loopback names) and the names given with `--web-host`; and one whose Origin
  is not that same Host (a page elsewhere cannot drive a cockpit). Refusals are logged, at
  most a few lines per client per 10 s;
- the terminal size a tab asks for (at the start and when the page resizes) is clamped by
  saf.serve.client_limits.clamp_size, and every client string in the log goes through `shown`;
- at most `max_sessions` tabs at once; the next is told so;
- when the face stops (Ctrl-C on `saf serve`), every tab's cockpit is told to quit, and killed
  if it has not within a few seconds: no process is left.

There is no login: keep it on loopback and reach it through an SSH port forward (docs/serve.md),
or bind it to a tailnet address only the people who may see the cluster can reach.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import shlex
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp_jinja2
from aiohttp import web
from textual_serve.app_service import AppService
from textual_serve.server import Server, to_int

from saf.deadline import within
from saf.serve.client_limits import RefusalLog, clamp_size
from saf.serve.faces import Bind
from saf.serve.http_site import listening
from saf.untrusted import shown

if TYPE_CHECKING:
    from saf.serve.hub import Hub

log = logging.getLogger(__name__)

QUIT_WAIT = 3.0  # seconds a tab's cockpit has to quit before it is killed
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


WILDCARDS = frozenset({"0.0.0.0", "::", ""})


def _normal(name: str) -> str:
    """A name or address as compared: 'Example.' -> 'example', '[::1]' -> '::1'."""
    name = name.strip().strip("[]").split("%", 1)[0].lower().rstrip(".")
    try:
        return ipaddress.ip_address(name).compressed
    except ValueError:
        return name


def _machine_names() -> set[str]:
    """Every address of this machine's interfaces, and its host names."""
    import psutil

    names = {socket.gethostname(), socket.getfqdn()}
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family in (socket.AF_INET, socket.AF_INET6):
                names.add(address.address)
    return names


def reachable_names(bind: Bind, extra: Iterable[str] = ()) -> frozenset[str]:
    """The names a browser may reach the server by on `bind` (its Host header's name)."""
    names = {bind.host, *extra}
    if bind.host in WILDCARDS:
        names |= _machine_names() | LOOPBACK_NAMES | {"127.0.0.1", "::1"}
    elif bind.loopback:
        names |= LOOPBACK_NAMES | {"127.0.0.1", "::1"}
    return frozenset(_normal(n) for n in names if n)


def _host_name(host_header: str) -> str:
    """'example:8000' -> 'example', '[::1]:8000' -> '::1'."""
    try:
        return urlsplit(f"//{host_header}").hostname or ""
    except ValueError:
        return ""


def refusal(names: frozenset[str], host: str | None, origin: str | None) -> str | None:
    """Why a request with these Host and Origin headers is refused, or None (see the module).
    `names` is `reachable_names(...)`."""
    if not host:
        return "no Host header"
    if _normal(_host_name(host)) not in names:
        return f"Host {shown(host, 100)} is not a name this server is reachable by " \
               "(add it with --web-host)"
    if origin is not None:
        try:
            netloc = urlsplit(origin).netloc
        except ValueError:
            netloc = ""
        if netloc.lower() != host.lower():
            return f"Origin {shown(origin, 100)} is another site than {shown(host, 100)}"
    return None


class _ClampedService(AppService):
    """A tab's cockpit whose terminal size always goes through clamp_size."""

    who = ""

    async def start(self, width: int, height: int) -> None:
        size = clamp_size(width, height)
        if size.clamped:
            log.warning("web: a tab from %s%s", self.who, size.note())
        await super().start(size.cols, size.rows)

    async def set_terminal_size(self, width: int, height: int) -> None:
        size = clamp_size(width, height)
        if size.clamped:
            log.warning("web: a tab from %s resized%s", self.who, size.note())
        await super().set_terminal_size(size.cols, size.rows)


class CockpitServer(Server):
    """textual-serve's Server with saf's command, checks and clean ending (see the module)."""

    def __init__(self, hub: Hub, bind: Bind, *, max_sessions: int = 16,
                 names: Iterable[str] = ()) -> None:
        command = shlex.join(hub.cockpit_argv())
        env = hub.cockpit_env()
        if env:
            command = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()) + " " + command
        # `exec`: the shell textual-serve starts becomes the cockpit, so stopping it stops that.
        super().__init__(f"exec {command}", host=bind.host, port=bind.port,
                         title=f"saf · {hub.cluster}")
        self.bind = bind
        self.names = reachable_names(bind, names)
        self.max_sessions = max_sessions
        self.services: set[AppService] = set()
        self.refused = RefusalLog(log, window=10.0, burst=5)

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        app.middlewares.append(self._check_host)
        return app

    @web.middleware
    async def _check_host(self, request: web.Request,
                          handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                          ) -> web.StreamResponse:
        """Every request, the page and its files as well as the websocket: Host and Origin
        (DNS rebinding, other sites; see the module)."""
        why = refusal(self.names, request.headers.get("Host"), request.headers.get("Origin"))
        if why is not None:
            self.refused.refused(str(request.remote), "web: refused %s %s from %s: %s",
                                 shown(request.method, 10), shown(request.path_qs, 100),
                                 shown(request.remote), why)
            raise web.HTTPForbidden(text=f"saf serve: refused: {why}\n")
        return await handler(request)

    async def on_startup(self, app: web.Application) -> None:
        """textual-serve prints a logo here; saf logs one line instead."""
        log.info("web: http://%s/", self.bind)

    @aiohttp_jinja2.template("app_index.html")
    async def handle_index(self, request: web.Request) -> dict[str, Any]:
        """The page, with its addresses made from the Host the browser asked for."""
        base = f"{request.scheme}://{request.host}"
        ws = ("wss:" if request.scheme == "https" else "ws:") + base.split(":", 1)[1]
        return {
            "font_size": to_int(request.query.get("fontsize", "16"), 16),
            "app_websocket_url": ws + str(request.app.router["websocket"].url_for()),
            "config": {"static": {"url": base + "/static/"}},
            "application": {"name": self.title},
        }

    async def handle_websocket(  # type: ignore[override]  # raises 403/503 before a socket
            self, request: web.Request) -> web.StreamResponse:
        remote = shown(request.remote)
        if len(self.services) >= self.max_sessions:
            self.refused.refused(str(request.remote), "web: refused a tab from %s: %d open "
                                 "already", remote, len(self.services))
            raise web.HTTPServiceUnavailable(
                text=f"saf serve: {self.max_sessions} cockpits are open already\n")
        websocket = web.WebSocketResponse(heartbeat=15)
        size = clamp_size(to_int(request.query.get("width", "80"), 80),
                          to_int(request.query.get("height", "24"), 24))
        service: _ClampedService | None = None
        try:
            await websocket.prepare(request)
            service = _ClampedService(self.command, write_bytes=websocket.send_bytes,
                                      write_str=websocket.send_str,
                                      # close answers a bool; textual-serve awaits it, drops it
                                      close=websocket.close,  # type: ignore[arg-type]
                                      download_manager=self.download_manager, debug=False)
            service.who = remote
            self.services.add(service)
            await service.start(size.cols, size.rows)
            log.info("web: a tab from %s opened a cockpit at %dx%d%s", remote, size.cols,
                     size.rows, size.note())
            await self._process_messages(websocket, service)
        except asyncio.CancelledError:
            await websocket.close()
            raise
        except Exception:  # one tab's failure is logged, the others go on
            log.exception("web: a tab failed")
        finally:
            if service is not None:
                await end(service)
                self.services.discard(service)
                log.info("web: a tab from %s closed", remote)
        return websocket

    async def end_all(self) -> None:
        await asyncio.gather(*(end(s) for s in list(self.services)), return_exceptions=True)
        self.services.clear()


async def end(service: AppService) -> None:
    """Ask a tab's cockpit to quit; kill it if it has not within QUIT_WAIT seconds."""
    process = service._process
    try:
        await within(service.stop(), QUIT_WAIT)
    except (TimeoutError, ConnectionError, OSError):
        pass
    if process is not None and process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        with contextlib.suppress(Exception):
            await within(process.wait(), QUIT_WAIT)


async def run(hub: Hub, bind: Bind, *, max_sessions: int = 16,
              names: Iterable[str] = ()) -> None:
    """Serve the cockpit on `bind` until cancelled; `names`: more names browsers reach it by
    (`--web-host`)."""
    server = CockpitServer(hub, bind, max_sessions=max_sessions, names=names)
    async with listening(await server._make_app(), bind, "--web"):
        try:
            await asyncio.Event().wait()
        finally:
            await server.end_all()  # every tab's cockpit ended before the site closes

