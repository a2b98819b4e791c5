"""A modal that shows what an action will do, exactly, and asks before doing it."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ConfirmScreen(ModalScreen[str]):
    """Dismisses with the id of the button pressed, or "cancel"."""

    BINDING_GROUP_TITLE = "Confirm"
    BINDINGS = [
        Binding("escape,n", "cancel", "Cancel", id="confirm.cancel",
                tooltip="Do nothing and close"),
    ]

    # The rest of the dialog's look is the theme's (themes/); this line is the dialog's own.
    DEFAULT_CSS = "ConfirmScreen #confirm-keys { color: $text-muted; margin-bottom: 1; }"

    def __init__(self, title: str, body: str, command: str,
                 choices: list[tuple[str, str, str]], *, danger: bool = False,
                 default: str = "cancel") -> None:
        """`choices`: (id, label, variant) per button, Cancel first is added for you.
        `default`: the id of the button Enter presses (it has the focus on opening); Cancel
        unless the caller asks otherwise, which a dangerous action should not."""
        super().__init__(classes="danger" if danger else "")
        self.title_text = title
        self.body = body
        self.command = command
        self.choices = choices
        self.default = default

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box") as box:
            box.border_title = self.title_text
            yield Static(self.body, id="confirm-body")
            yield Static(self.command, id="confirm-command", markup=False)
            yield Static(self._keys(), id="confirm-keys", markup=False)
            with Horizontal(id="confirm-buttons"):
                yield Button("Cancel", id="cancel", variant="default")
                for ident, label, variant in self.choices:
                    # The callers' variants are Button's words; a wrong one fails loudly here.
                    yield Button(label, id=ident, variant=variant)  # type: ignore[arg-type]

    def _keys(self) -> str:
        """What Enter and Esc do here, said before they are pressed."""
        labels = {"cancel": "Cancel", **{ident: label for ident, label, _ in self.choices}}
        if self.default == "cancel":
            return "Enter or Esc: Cancel · Tab: the other buttons"
        return f"Enter: {labels[self.default]} · Esc: Cancel"

    def on_mount(self) -> None:
        self.query_one(f"#{self.default}", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id or "cancel")

    def action_cancel(self) -> None:
        self.dismiss("cancel")
