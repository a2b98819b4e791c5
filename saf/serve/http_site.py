"""An aiohttp application served on a face's bind, for the faces that speak HTTP (`--web`,
`--metrics`): one way to listen, to say a port cannot be listened on, and to close."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from saf.errors import SafError
from saf.serve.faces import Bind


@contextlib.asynccontextmanager
async def listening(app: web.Application, bind: Bind, option: str) -> AsyncIterator[None]:
    """Serve `app` on `bind` while the block runs. A port that cannot be listened on is a
    SafError naming the face's option (`--web 127.0.0.1:80: cannot listen: ...`)."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, bind.host, bind.port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            raise SafError(f"{option} {bind}: cannot listen: {exc.strerror or exc}") from None
        yield
    finally:
        await runner.cleanup()
