"""`saf serve`: one long-running saf that owns the fleet and the agent streams (the hub,
saf.serve.hub) and shows them through faces: `--ssh` (a cockpit per SSH client), and the
faces registered in saf.serve.faces."""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from saf.commands import common
from saf.errors import SafError

if TYPE_CHECKING:
    import asyncio

    from saf.serve.faces import Bind

log = logging.getLogger("saf.serve")


def _log_to_stderr() -> None:
    """Logins, logouts and warnings on stderr, one timestamped line each."""
    from saf.serve.client_limits import EscapingFormatter

    logger = logging.getLogger("saf")
    if not any(isinstance(h, logging.StreamHandler) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        # Every message escaped (control characters, newlines): what a client sent can never
        # write a line of its own (saf.serve.client_limits).
        handler.setFormatter(EscapingFormatter("%(asctime)s saf serve: %(message)s",
                                               "%Y-%m-%d %H:%M:%S"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


@click.command("serve")
@click.option("--ssh", "ssh_bind", metavar="HOST:PORT",
              help="Give every SSH client with a terminal its own cockpit, e.g. 127.0.0.1:8022.")
@click.option("--metrics", "metrics_bind", metavar="HOST:PORT",
              help="Serve /metrics for Prometheus, e.g. 127.0.0.1:9464.")
@click.option("--web", "web_bind", metavar="HOST:PORT",
              help="Serve the cockpit in a web page, e.g. 127.0.0.1:8000.")
@click.option("--readonly", is_flag=True,
              help="Refuse every action that changes a node, from every session.")
@click.option("--authorized-keys", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="The public keys allowed in over --ssh (OpenSSH's "
              "authorized_keys format; default ~/.ssh/authorized_keys). A key with "
              "environment=\"SAF_READONLY=1\" gets a read-only cockpit.")
@click.option("--host-key", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The SSH server's private host key (default: one made on first use in "
                   "saf's state folder, kept 0600).")
@click.option("--max-sessions", type=click.IntRange(min=1), default=16, show_default=True,
              help="Cockpit sessions open at once over --ssh, and browser tabs over --web.")
@click.option("--max-unauthenticated", type=click.IntRange(min=1), default=32,
              show_default=True, help="SSH connections still logging in at once.")
@click.option("--max-unauthenticated-per-source", "max_per_source",
              type=click.IntRange(min=1), default=4, show_default=True,
              help="SSH connections still logging in at once from one address.")
@click.option("--login-timeout", type=click.FloatRange(min=1), default=10.0,
              show_default=True, help="Seconds an SSH client has to log in.")
@click.option("--web-host", "web_hosts", multiple=True, metavar="NAME",
              help="A name (or address) browsers reach --web by, besides its bind address "
                   "and this machine's own names and addresses (repeat for more).")
@click.option("--interval", type=click.FloatRange(min=0.1), default=1.0, show_default=True,
              help="Seconds between samples of each node.")
@click.pass_context
def serve(ctx: click.Context, ssh_bind: str | None, metrics_bind: str | None,
          web_bind: str | None, readonly: bool, authorized_keys: Path | None,
          host_key: Path | None, max_sessions: int, max_unauthenticated: int,
          max_per_source: int, login_timeout: float, web_hosts: tuple[str, ...],
          interval: float) -> None:
    """Run the fleet once and serve it: one agent per node however many watch, a cockpit for
    every SSH client (`ssh -p 8022 localhost` after `saf serve --ssh 127.0.0.1:8022`) and
    every browser tab (--web), /metrics for Prometheus (--metrics). Ctrl-C ends every session
    and stops the agents.

    \b
    saf serve --ssh 127.0.0.1:8022
    saf serve --ssh 0.0.0.0:8022 --readonly --authorized-keys ~/.config/saf/tablet_keys
    saf serve --web 127.0.0.1:8000 --metrics 127.0.0.1:9464
    saf tui --hub SOCKET     (a cockpit on this machine fed from the same hub)
    """
    from saf.serve.faces import missing_face, parse_bind

    readonly = readonly or bool((ctx.find_root().obj or {}).get("readonly"))
    wanted: list[tuple[str, Bind]] = []
    for name, text in (("ssh", ssh_bind), ("metrics", metrics_bind), ("web", web_bind)):
        if text is None:
            continue
        why = missing_face(name)
        if why is not None:
            raise SafError(why)
        wanted.append((name, parse_bind(text, f"--{name}")))
    inventory = common.inventory(ctx)
    if "ssh" in {name for name, _ in wanted}:
        # Read before anything starts, so a missing or empty file is said at once.
        from saf.serve.authorized import default_authorized_keys, load_authorized_keys

        load_authorized_keys(authorized_keys or default_authorized_keys())
    _log_to_stderr()
    options: dict[str, dict[str, object]] = {
        "ssh": {"authorized_keys": authorized_keys, "host_key": host_key,
                "max_sessions": max_sessions, "max_unauthenticated": max_unauthenticated,
                "max_per_source": max_per_source, "login_timeout": login_timeout},
        "web": {"max_sessions": max_sessions, "names": web_hosts}}
    common.run(_serve(inventory, wanted, options, readonly=readonly, interval=interval))


async def _serve(inventory: object, wanted: list[tuple[str, Bind]],
                 options: dict[str, dict[str, object]], *, readonly: bool,
                 interval: float) -> None:
    import asyncio
    import functools
    import signal

    from saf.inventory.model import Inventory
    from saf.serve.faces import face, warn_if_beyond_loopback
    from saf.serve.hub import Hub

    assert isinstance(inventory, Inventory)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    hub = Hub(inventory, readonly=readonly, interval=interval)
    tasks: list[asyncio.Task[None]] = []
    try:
        await hub.start()
        click.echo(f"saf serve: {len(hub.nodes)} nodes of {hub.cluster}; hub socket "
                   f"{hub.socket_path} (saf tui --hub {hub.socket_path})", err=True)
        for name, bind in wanted:
            warn_if_beyond_loopback(bind, f"--{name}")
            run = functools.partial(face(name), **options.get(name, {}))
            tasks.append(asyncio.create_task(run(hub, bind), name=f"face-{name}"))
        waiter = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        for task in done:
            error = task.exception() if task is not waiter else None
            if error is not None:
                raise error
        log.info("stopping: ending every session")
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await hub.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
