"""Dashboard (GPU alert scenario, so every colour is used) in a given theme."""

from saf.screens.app import SafApp

from tests.snapshot_apps._common import cockpit


def make(theme: str) -> SafApp:
    return cockpit("gpu-over-temp.jsonl", theme=theme)


app = make("saf-light")
