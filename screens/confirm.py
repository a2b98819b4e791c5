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

    def __init__(self, title: str, body: str, command: str,
                 choices: list[tuple[str, str, str]], *, danger: bool = False) -> None:
        """`choices`: (id, label, variant) per button, Cancel first is added for you."""
        super().__init__(classes="danger" if danger else "")
        self.title_text = title
        self.body = body
        self.command = command
        self.choices = choices

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box") as box:
            box.border_title = self.title_text
            yield Static(self.body, id="confirm-body")
            yield Static(self.command, id="confirm-command", markup=False)
            with Horizontal(id="confirm-buttons"):
                yield Button("Cancel", id="cancel", variant="default")
                for ident, label, variant in self.choices:
                    yield Button(label, id=ident, variant=variant)  # type: ignore[arg-type]

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id or "cancel")

    def action_cancel(self) -> None:
        self.dismiss("cancel")
