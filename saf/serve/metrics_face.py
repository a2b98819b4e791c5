"""The metrics face of `saf serve --metrics HOST:PORT`: `/metrics` for Prometheus.

An aiohttp server on the hub's own event loop, so a scrape reads the store between two events,
never while one is being applied (prometheus_client's own server would read it from a thread).
What it serves is saf.serve.prometheus' collector over the hub's store and signal feed; `/`
says where to look. Loopback by default (`saf serve` warns when bound beyond it); it serves
figures only and takes no input but the path.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from saf.serve.faces import Bind
from saf.serve.http_site import listening
from saf.serve.prometheus import registry

if TYPE_CHECKING:
    from saf.serve.hub import Hub

log = logging.getLogger(__name__)


def make_app(hub: Hub) -> web.Application:
    reg = registry(hub.store, hub.nodes, hub.signal_feed)

    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(reg)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def index(_: web.Request) -> web.Response:
        return web.Response(text=f"saf serve: the metrics of {hub.cluster} are at /metrics\n")

    app = web.Application(client_max_size=4096)
    app.add_routes([web.get("/metrics", metrics), web.get("/", index)])
    return app


async def run(hub: Hub, bind: Bind) -> None:
    """Serve /metrics on `bind` until cancelled."""
    async with listening(make_app(hub), bind, "--metrics"):
        log.info("metrics: http://%s/metrics", bind)
        await asyncio.Event().wait()
