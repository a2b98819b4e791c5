"""The Recipes screen's questions: the variables a recipe needs, and the sudo password."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label

from saf.recipe.model import Recipe


class VarsModal(ModalScreen[dict[str, str] | None]):
    """Asks for the variables a recipe needs and has no default for."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="recipes.vars.cancel",
                        tooltip="Do not run the recipe")]

    def __init__(self, recipe: Recipe, names: list[str]) -> None:
        super().__init__()
        self.recipe = recipe
        self.names = names

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box") as box:
            box.border_title = f"Run {self.recipe.name}: variables"
            for name in self.names:
                var = self.recipe.vars[name]
                yield Label(f"{name}" + (f" — {var.description}" if var.description else ""))
                yield Input(id=f"var-{name}", placeholder=name)
            with Horizontal(id="confirm-buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Run", id="run", variant="primary")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "run":
            self._submit()
        else:
            self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._submit()

    def _submit(self) -> None:
        self.dismiss({n: self.query_one(f"#var-{n}", Input).value for n in self.names})

    def action_cancel(self) -> None:
        self.dismiss(None)


class PasswordModal(ModalScreen[str | None]):
    """Asks for the sudo password once; it goes to sudo's stdin and nowhere else."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="recipes.password.cancel",
                        tooltip="Do not give a password (the become steps fail)")]

    def __init__(self, prompt: str) -> None:
        super().__init__()
        self.prompt = prompt

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box") as box:
            box.border_title = "sudo"
            yield Label(self.prompt)
            yield Input(password=True, id="password")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)
