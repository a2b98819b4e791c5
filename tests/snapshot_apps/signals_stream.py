"""Signals: eight symbols, a flash anomaly on TSLA, ETH-USD silent (a gap), bad frames."""

from tests.snapshot_apps._signals import make_signals_app

app = make_signals_app()
