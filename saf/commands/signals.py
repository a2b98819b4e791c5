"""`saf signals`: watch, publish, record and replay the cluster's ZeroMQ trading signals."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from saf.commands import common
from saf.errors import InventoryError
from saf.inventory.model import Inventory

if TYPE_CHECKING:  # imported where used, so `saf --help` does not load the signals package
    from collections.abc import Coroutine

    from saf.signals.book import SignalBook
    from saf.signals.codec import AISignal, BadFrame
    from saf.signals.config import SignalsConfig
    from saf.signals.endpoints import Endpoint
    from saf.signals.subscriber import Subscriber

DEMO_ENDPOINT = "tcp://127.0.0.1:5555"


def _maybe_inventory(ctx: click.Context) -> Inventory | None:
    """The inventory when there is one; a tcp:// endpoint needs none. A named inventory that
    is wrong is still an error."""
    try:
        return common.inventory(ctx)
    except InventoryError as exc:
        if exc.path is None:  # none found anywhere
            return None
        raise


def _setup(ctx: click.Context, endpoints: tuple[str, ...],
           ssh: bool) -> tuple[Inventory | None, SignalsConfig, list[Endpoint]]:
    from saf.signals.config import signals_config
    from saf.signals.endpoints import parse_endpoint

    inv = _maybe_inventory(ctx)
    config = signals_config(inv)
    chosen = list(endpoints) or list(config.endpoints)
    parsed = [parse_endpoint(e, inv, ssh=ssh or config.ssh) for e in chosen]
    return inv, config, parsed


def _stopper(duration: float | None) -> Callable[[], bool]:
    deadline = time.monotonic() + duration if duration else None
    return lambda: deadline is not None and time.monotonic() >= deadline


@click.group("signals")
def signals() -> None:
    """Watch, publish, record and replay the cluster's ZeroMQ trading signals (48-byte
    AISignal frames). ENDPOINT is tcp://HOST:PORT or ssh://NODE:PORT (through an SSH port
    forward); the default comes from the inventory's [signals] table, else tcp://<head>:5555.
    """


@signals.command("tail")
@click.argument("endpoints", nargs=-1, metavar="[ENDPOINT]...")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per frame (bad frames "
              "too, with their reason) instead of the live table.")
@click.option("--ssh", is_flag=True, help="Reach tcp://NODE:PORT endpoints that name an "
              "inventory node through an SSH port forward.")
@click.option("--count", type=click.IntRange(min=1), help="Stop after this many frames.")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Stop after this long.")
@click.option("--symbol", default="", help="Show only symbols containing this text.")
@click.pass_context
def tail(ctx: click.Context, endpoints: tuple[str, ...], as_json: bool, ssh: bool,
         count: int | None, duration: float | None, symbol: str) -> None:
    """Subscribe and show the stream: a live table per symbol with rates, latency, anomalies,
    gaps and bad frames by reason; or, with --json, one line per frame."""
    from saf.render.signals_view import print_frame_json
    from saf.signals.book import SignalBook
    from saf.signals.subscriber import Subscriber

    inv, config, parsed = _setup(ctx, endpoints, ssh)
    printed = 0

    def on_frame(recv_ns: int, item: AISignal | BadFrame, frame: bytes) -> None:
        nonlocal printed
        if count is None or printed < count:
            printed += 1
            print_frame_json(recv_ns, item, frame)

    book = SignalBook(config.book_settings(), on_frame=on_frame if as_json else None)
    expired = _stopper(duration)

    def until() -> bool:
        if as_json:
            sys.stdout.flush()
        counted = printed if as_json else book.total_count() + sum(book.bad.values())
        return expired() or (count is not None and counted >= count)

    sub = Subscriber(parsed, book.add_many, tick=book.tick, refused=book.refused,
                     inventory=inv)
    title = " ".join(e.text for e in parsed)
    if as_json:
        common.run(sub.run(until=until))
    else:
        common.run(_live(sub, book, until, title, symbol))


async def _live(sub: Subscriber, book: SignalBook, until: Callable[[], bool], title: str,
                symbol: str) -> None:
    from rich.console import RenderableType
    from rich.live import Live

    from saf.render.console import console
    from saf.render.signals_view import render, rows_that_fit

    task = asyncio.create_task(sub.run(until=until))
    out = console()

    def view() -> RenderableType:
        rows = rows_that_fit(out.height)
        return render(book.snapshot(time.time_ns(), symbols=symbol, limit=rows), title=title)

    with Live(console=out, refresh_per_second=4, transient=False) as live:
        try:
            while not task.done():
                live.update(view())
                await asyncio.wait({task}, timeout=0.25)
            live.update(view())
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if not out.is_terminal:
        out.print()  # a piped Live leaves its last line open
    task.result()


def _warn_if_exposed(endpoint: str) -> None:
    from saf.signals.demo import reaches_beyond_loopback

    if reaches_beyond_loopback(endpoint):
        click.secho(f"warning: {endpoint} accepts subscribers from other machines, not only "
                    "this one (bind tcp://127.0.0.1:PORT to keep it local)", fg="yellow",
                    err=True)


@signals.command("publish")
@click.option("--demo", is_flag=True, help="Publish realistic synthetic signals for a handful "
              "of symbols (the only kind of publishing saf does).")
@click.argument("endpoint", default=DEMO_ENDPOINT)
@click.option("--seed", type=int, help="Seed the random walk (the same seed, the same stream).")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Stop after this long.")
@click.option("--bad-every", type=click.IntRange(min=0), default=0, metavar="N",
              help="Make every Nth frame a bad one (too short), to see bad-frame counting.")
def publish(demo: bool, endpoint: str, seed: int | None, duration: float | None,
            bad_every: int) -> None:
    """Bind a PUB socket on ENDPOINT (default tcp://127.0.0.1:5555) and publish signals."""
    from saf.signals.demo import DEMO_SYMBOLS, publish_demo

    if not demo:
        raise click.UsageError("only demo signals can be published: add --demo")
    _warn_if_exposed(endpoint)
    click.secho(f"publishing demo signals on {endpoint}: {', '.join(DEMO_SYMBOLS)}",
                dim=True, err=True)
    sent = common.run(publish_demo(endpoint, seed=seed, duration=duration,
                                   bad_every=bad_every))
    click.secho(f"sent {sent} frames", dim=True, err=True)


@signals.command("record")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("endpoints", nargs=-1, metavar="[ENDPOINT]...")
@click.option("--ssh", is_flag=True, help="Reach tcp://NODE:PORT through SSH.")
@click.option("--count", type=click.IntRange(min=1), help="Stop after this many frames.")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Stop after this long.")
@click.pass_context
def record(ctx: click.Context, file: Path, endpoints: tuple[str, ...], ssh: bool,
           count: int | None, duration: float | None) -> None:
    """Keep the stream in FILE: every frame as received (bad ones too) with its receive
    time, until Ctrl-C, --count or --duration."""
    from saf.signals.recording import Recorder
    from saf.signals.subscriber import Subscriber

    inv, _, parsed = _setup(ctx, endpoints, ssh)
    expired = _stopper(duration)
    with Recorder(file) as recorder:
        sub = Subscriber(parsed, recorder.write, inventory=inv)
        click.secho(f"recording {' '.join(e.text for e in parsed)} to {file} "
                    "(Ctrl-C to stop)", dim=True, err=True)
        try:
            common.run(sub.run(until=lambda: expired() or (
                count is not None and recorder.frames >= count)))
        finally:
            click.secho(f"recorded {recorder.frames} frames to {file}", dim=True, err=True)


@signals.command("replay")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--speed", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Play N times faster than recorded (0: as fast as possible).")
@click.option("--to", "to", metavar="ENDPOINT", help="Publish the frames on a PUB socket "
              "bound here instead of showing them.")
@click.option("--wait", type=click.FloatRange(min=0), default=1.0, show_default=True,
              metavar="SECONDS", help="With --to: time for subscribers to connect first.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per frame.")
@click.pass_context
def replay(ctx: click.Context, file: Path, speed: float, to: str | None, wait: float,
           as_json: bool) -> None:
    """Play a recording back: on a PUB socket (--to), as JSON lines, or as the live table
    (the book sees the recorded receive times, so latencies are as recorded)."""
    from saf.signals.recording import read_recording
    from saf.signals.recording import replay as play

    next(iter(read_recording(file)), None)  # a bad file fails now, before anything starts
    if to:
        common.run(_replay_to(file, to, speed, wait))
        return
    from saf.render.signals_view import print_frame_json
    from saf.signals.book import SignalBook
    from saf.signals.config import signals_config

    config = signals_config(_maybe_inventory(ctx))
    book = SignalBook(config.book_settings(), on_frame=print_frame_json if as_json else None)

    def sink(frames: list[bytes], recv_ns: int) -> None:
        book.add_many(frames, recv_ns)
        book.tick(recv_ns)
        clock[0] = recv_ns

    clock = [time.time_ns()]
    if as_json:
        common.run(play(file, sink, speed=speed))
        return
    common.run(_replay_live(play(file, sink, speed=speed), book, clock, str(file)))


async def _replay_live(playing: Coroutine[object, object, int], book: SignalBook,
                       clock: list[int], title: str) -> None:
    from rich.live import Live

    from saf.render.console import console
    from saf.render.signals_view import render, rows_that_fit

    task = asyncio.create_task(playing)
    out = console()
    with Live(console=out, refresh_per_second=4) as live:
        while not task.done():
            live.update(render(book.snapshot(clock[0], limit=rows_that_fit(out.height)),
                               title=title))
            await asyncio.wait({task}, timeout=0.25)
        live.update(render(book.snapshot(clock[0], limit=rows_that_fit(out.height)),
                           title=title))
    task.result()


async def _replay_to(file: Path, endpoint: str, speed: float, wait: float) -> None:
    import zmq

    from saf.signals.demo import bind_pub
    from saf.signals.recording import replay as play

    _warn_if_exposed(endpoint)
    sock = bind_pub(endpoint, sndhwm=1_000_000)
    click.secho(f"replaying {file} on {endpoint}", dim=True, err=True)
    try:
        await asyncio.sleep(wait)

        def send(frames: list[bytes], _: int) -> None:
            for frame in frames:
                sock.send(frame, zmq.NOBLOCK)

        played = await play(file, send, speed=speed)
        click.secho(f"replayed {played} frames", dim=True, err=True)
    finally:
        sock.close(linger=2000)
