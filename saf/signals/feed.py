"""A signal feed: a book together with the source that fills it (a live subscriber, a replay,
or nothing for a fixed book), for a face such as the cockpit's Signals screen to own.

The face starts `run()` once (as a worker) and reads `book.snapshot(feed.now_ns())` as often as
it redraws; `now_ns` is the wall clock when live and the recording's clock in a replay.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from saf.errors import SafError
from saf.events import Event
from saf.fleet import Fleet
from saf.inventory.model import Inventory
from saf.signals.book import SignalBook
from saf.signals.config import SignalsConfig, signals_config
from saf.signals.events import SignalSourceState


class SignalFeed:
    def __init__(self, book: SignalBook, label: str, *,
                 source: Callable[[SignalFeed], Awaitable[Any]] | None = None,
                 clock: Callable[[], int] | None = None) -> None:
        self.book = book
        self.label = label
        self.source = source
        self.clock = clock or time.time_ns
        self.sources: dict[str, str] = {}  # endpoint -> connecting, connected, ...
        self.error: str | None = None
        self.running = False
        self.events: list[Event] = []  # source state changes, newest last (bounded)

    def now_ns(self) -> int:
        return self.clock()

    def on_event(self, event: Event) -> None:
        if isinstance(event, SignalSourceState):
            self.sources[event.endpoint] = event.state + (f" ({event.message})"
                                                          if event.message else "")
        self.events.append(event)
        del self.events[:-50]

    async def run(self) -> None:
        """Run the source to its end (a replay) or until cancelled (live). A failure is kept
        in `error` for the face to show; it never propagates."""
        if self.source is None:
            return
        self.running = True
        try:
            await self.source(self)
        except SafError as exc:
            self.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - shown on screen; the cockpit stays up
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.running = False

    @property
    def state(self) -> str:
        if self.error:
            return f"error: {self.error}"
        if self.sources:
            return ", ".join(f"{e} {s}" for e, s in self.sources.items())
        return "running" if self.running else "idle"

    # -- the usual feeds ----------------------------------------------------------------------

    @classmethod
    def live(cls, inventory: Inventory | None, *, fleet: Fleet | None = None,
             endpoints: list[str] | None = None,
             config: SignalsConfig | None = None) -> SignalFeed:
        """Subscribe to the inventory's signal endpoints (or `endpoints`), reusing `fleet`'s
        connections for ssh:// forwards."""
        config = config or signals_config(inventory)
        chosen = endpoints or list(config.endpoints)
        book = SignalBook(config.book_settings())

        async def source(feed: SignalFeed) -> None:
            from saf.signals.subscriber import Subscriber

            await Subscriber(chosen, book.add_many, tick=book.tick, refused=book.refused,
                             inventory=inventory,
                             fleet=fleet, ssh=config.ssh, emit=feed.on_event).run()

        feed = cls(book, " ".join(chosen), source=source)
        return feed

    @classmethod
    def replay(cls, path: Path, *, speed: float = 1.0,
               config: SignalsConfig | None = None) -> SignalFeed:
        """Play a recording into a book on the recording's own clock."""
        from saf.signals.recording import replay

        book = SignalBook((config or SignalsConfig()).book_settings())
        clock = [time.time_ns()]

        def sink(frames: list[bytes], recv_ns: int) -> None:
            clock[0] = recv_ns
            book.add_many(frames, recv_ns)
            book.tick(recv_ns)

        async def source(feed: SignalFeed) -> None:
            await replay(path, sink, speed=speed)

        return cls(book, f"replay {path.name}", source=source, clock=lambda: clock[0])
