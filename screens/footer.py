"""The cockpit's footer: the keys that fit the terminal's width, whole.

Textual's Footer lays every shown key in one row and lets the row run off the right edge, so at
80 or 60 columns it ends inside a word ('space Pa', 'h Hist'). This one leaves keys out instead,
the least needed first: the app-wide keys (Record, Theme, the palette's ^p, the replay's Pause),
then the screen's own keys from the right; a screen's way back or in (Back, Open), Quit and Help
always stay, and Help lists every key left out. Only when even those do not fit at the normal
spacing does it close up the gaps (Textual's compact footer).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rich.cells import cell_len
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

# Binding ids never left out: the way into and out of a screen, Quit and Help.
ESSENTIAL_ACTIONS = frozenset({"back", "open", "quit", "help"})
# Left out first, in this order (the palette's key is named PALETTE here).
PALETTE = "<palette>"
FIRST_LEFT_OUT = ("app.record", "app.theme", PALETTE, "replay.pause")


@dataclass(frozen=True)
class Key:
    """One key the footer may show: its id (a binding's id, or PALETTE) and how it reads."""

    ident: str
    key: str
    display: str
    description: str
    action: str
    enabled: bool
    tooltip: str

    def width(self, compact: bool) -> int:
        """Columns it takes in the row: ' k desc ' normally, 'k desc ' compact."""
        inner = cell_len(self.display) + 1 + cell_len(self.description)
        if self.ident == PALETTE:  # docked right, behind a one-column rule; always compact
            return 1 + inner + (0 if compact else 1)
        return inner + (1 if compact else 2)

    @property
    def essential(self) -> bool:
        return self.action.rsplit(".", 1)[-1] in ESSENTIAL_ACTIONS


def leave_out_order(keys: list[Key]) -> list[Key]:
    """The keys that may be left out, the first to go first: FIRST_LEFT_OUT's, then the
    screen's own keys from the right."""
    by_id = {k.ident: k for k in keys}
    first = [by_id[i] for i in FIRST_LEFT_OUT if i in by_id]
    rest = [k for k in reversed(keys) if not k.essential and k not in first]
    return first + rest


def fit(keys: list[Key], width: int) -> tuple[list[Key], bool]:
    """The keys to show within `width` columns, in their order, and whether compact: as many
    as fit at the normal spacing, leaving out by leave_out_order; compact only when the
    essential keys alone do not fit normally."""
    order = leave_out_order(keys)
    for compact in (False, True):
        for dropped in range(len(order) + 1):
            gone = set(map(id, order[:dropped]))
            shown = [k for k in keys if id(k) not in gone]
            if sum(k.width(compact) for k in shown) <= width:
                return shown, compact
    gone = set(map(id, order))
    return [k for k in keys if id(k) not in gone], True


class FittingFooter(Footer):
    """Footer that shows the keys that fit, whole (see the module's docstring)."""

    def __init__(self, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]  # Footer's own keywords, passed on
        self._fitted_for: int | None = None

    def available_keys(self) -> list[Key]:
        keys: list[Key] = []
        seen: set[str] = set()
        for _node, binding, enabled, tooltip in self.screen.active_bindings.values():
            if not binding.show or binding.action in seen:
                continue
            seen.add(binding.action)
            keys.append(self._key(binding.id or binding.action, binding, enabled, tooltip))
        if self.show_command_palette and self.app.ENABLE_COMMAND_PALETTE:
            found = self.screen.active_bindings.get(self.app.COMMAND_PALETTE_BINDING)
            if found is not None:
                _node, binding, enabled, tooltip = found
                keys.append(self._key(PALETTE, binding, enabled,
                                      binding.tooltip or binding.description))
        return keys

    def _key(self, ident: str, binding: Binding, enabled: bool, tooltip: str) -> Key:
        return Key(ident, binding.key, self.app.get_key_display(binding), binding.description,
                   binding.action, enabled, tooltip)

    def compose(self) -> ComposeResult:
        if not self._bindings_ready:
            return
        width = self.app.size.width
        self._fitted_for = width
        shown, compact = fit(self.available_keys(), width)
        self.set_class(compact, "-compact")
        yield from self._widgets(shown, compact)

    def _widgets(self, keys: Iterable[Key], compact: bool) -> Iterable[FooterKey]:
        for k in keys:
            widget = FooterKey(k.key, k.display, k.description, k.action,
                               disabled=not k.enabled, tooltip=k.tooltip,
                               classes="-command-palette" if k.ident == PALETTE else "")
            # As Textual's footer: the palette's key is always drawn compact.
            widget.compact = compact or k.ident == PALETTE
            yield widget

    def on_resize(self, _: events.Resize) -> None:
        if self._bindings_ready and self._fitted_for != self.app.size.width:
            self.call_after_refresh(self.recompose)
