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
- a websocket whose Origin is another site is refused (a page elsewhere cannot drive a
  cockpit), and on a loopback bind so is a Host that is not a loopback name (DNS rebinding);
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
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp_jinja2
from aiohttp import web
from textual_serve.app_service import AppService
from textual_serve.server import Server, to_int

from saf.serve.faces import Bind
from saf.serve.http_site import listening

if TYPE_CHECKING:
    from saf.serve.hub import Hub

log = logging.getLogger(__name__)

QUIT_WAIT = 3.0  # seconds a tab's cockpit has to quit before it is killed
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def _is_loopback_name(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _host_name(host_header: str) -> str:
    """'example:8000' -> 'example', '[::1]:8000' -> '::1'."""
    return urlsplit(f"//{host_header}").hostname or ""


def refusal(bind: Bind, host: str | None, origin: str | None) -> str | None:
    """Why a websocket request with these Host and Origin headers is refused, or None."""
    if not host:
        return "no Host header"
    if bind.loopback and not _is_loopback_name(_host_name(host)):
        return f"Host {host!r} is not this machine's loopback name (the server is on loopback)"
    if origin is not None and urlsplit(origin).netloc.lower() != host.lower():
        return f"Origin {origin!r} is another site than {host!r}"
    return None


class CockpitServer(Server):
    """textual-serve's Server with saf's command, checks and clean ending (see the module)."""

    def __init__(self, hub: Hub, bind: Bind, *, max_sessions: int = 16) -> None:
        command = shlex.join(hub.cockpit_argv())
        env = hub.cockpit_env()
        if env:
            command = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()) + " " + command
        # `exec`: the shell textual-serve starts becomes the cockpit, so stopping it stops that.
        super().__init__(f"exec {command}", host=bind.host, port=bind.port,
                         title=f"saf · {hub.cluster}")
        self.bind = bind
        self.max_sessions = max_sessions
        self.services: set[AppService] = set()

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
        why = refusal(self.bind, request.headers.get("Host"), request.headers.get("Origin"))
        if why is not None:
            log.warning("web: refused a tab from %s: %s", request.remote, why)
            raise web.HTTPForbidden(text=f"saf serve: refused: {why}\n")
        if len(self.services) >= self.max_sessions:
            log.warning("web: refused a tab from %s: %d open already", request.remote,
                        len(self.services))
            raise web.HTTPServiceUnavailable(
                text=f"saf serve: {self.max_sessions} cockpits are open already\n")
        websocket = web.WebSocketResponse(heartbeat=15)
        width = to_int(request.query.get("width", "80"), 80)
        height = to_int(request.query.get("height", "24"), 24)
        service: AppService | None = None
        try:
            await websocket.prepare(request)
            service = AppService(self.command, write_bytes=websocket.send_bytes,
                                 write_str=websocket.send_str,
                                 close=websocket.close,  # type: ignore[arg-type]
                                 download_manager=self.download_manager, debug=False)
            self.services.add(service)
            await service.start(width, height)
            log.info("web: a tab from %s opened a cockpit at %dx%d", request.remote, width,
                     height)
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
                log.info("web: a tab from %s closed", request.remote)
        return websocket

    async def end_all(self) -> None:
        await asyncio.gather(*(end(s) for s in list(self.services)), return_exceptions=True)
        self.services.clear()


async def end(service: AppService) -> None:
    """Ask a tab's cockpit to quit; kill it if it has not within QUIT_WAIT seconds."""
    process = service._process
    try:
        await asyncio.wait_for(service.stop(), QUIT_WAIT)
    except (TimeoutError, ConnectionError, OSError):
        pass
    if process is not None and process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(process.wait(), QUIT_WAIT)


async def run(hub: Hub, bind: Bind, *, max_sessions: int = 16) -> None:
    """Serve the cockpit on `bind` until cancelled."""
    server = CockpitServer(hub, bind, max_sessions=max_sessions)
    async with listening(await server._make_app(), bind, "--web"):
        try:
            await asyncio.Event().wait()
        finally:
            await server.end_all()  # every tab's cockpit ended before the site closes

