"""Signals in the light theme (theme variables only: every theme works)."""

from tests.snapshot_apps._signals import make_signals_app

app = make_signals_app(theme="saf-light")
