"""The cockpit's terminal driver: Textual's Linux driver, reading any byte a keyboard sends.

Textual (8.2.8 and every release before it) decodes stdin with a strict UTF-8 decoder in the
driver's input thread: one invalid byte (0xff, a stray continuation byte 0x80, an overlong
c0 c1, f5 / f8 / fc) raises UnicodeDecodeError there, the app panics and the cockpit ends
with exit status 0, whether typed at a local terminal or through `saf serve --ssh`
(issue 22 item 14; upstream Textualize/textual#6456, open). Here the same loop decodes with
errors="replace": an invalid byte is U+FFFD, a key the cockpit does not bind.

`SafApp.get_driver_class` hands this class out only where Textual itself would have chosen
`LinuxDriver`; a driver named by TEXTUAL_DRIVER (textual-serve's web driver) is left alone.
Once a Textual release decodes with "replace" itself, this module can go.
"""

from __future__ import annotations

import os
import selectors
from codecs import getincrementaldecoder

from textual._loop import loop_last
from textual._parser import ParseError
from textual._xterm_parser import XTermParser
from textual.drivers.linux_driver import LinuxDriver


class TolerantLinuxDriver(LinuxDriver):
    """`LinuxDriver` whose input thread replaces invalid UTF-8 instead of dying on it."""

    def run_input_thread(self) -> None:
        """Textual 8.2.8's `LinuxDriver.run_input_thread`, with the decoder's one change."""
        selector = selectors.SelectSelector()
        selector.register(self.fileno, selectors.EVENT_READ)
        fileno = self.fileno
        parser = XTermParser(self._debug)
        # The change: "replace", not the default "strict". An incremental decoder still
        # joins a multi-byte character split across two reads.
        decode = getincrementaldecoder("utf-8")(errors="replace").decode

        def process(events: list[tuple[selectors.SelectorKey, int]], final: bool = False) -> None:
            for last, (_key, mask) in loop_last(events):
                if mask & selectors.EVENT_READ:
                    text = decode(os.read(fileno, 1024 * 4), final=final and last)
                    if not text:
                        break  # stdin is a pipe that ended
                    for event in parser.feed(text):
                        self.process_message(event)
            for event in parser.tick():
                self.process_message(event)

        try:
            while not self.exit_event.is_set():
                process(selector.select(0.1))
            selector.unregister(self.fileno)
            process(selector.select(0.1), final=True)
        finally:
            selector.close()
            try:
                for _event in parser.feed(""):
                    pass
            except (EOFError, ParseError):
                pass
