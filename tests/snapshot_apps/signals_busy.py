"""Signals as `saf demo` shows it: a publisher on a loopback port, more anomalies than the log's
panel holds, and a frame count in thousands (a header longer than a tablet held upright)."""

from tests.snapshot_apps._signals import make_signals_app, scripted_book

app = make_signals_app(scripted_book(busy=True), endpoint="tcp://127.0.0.1:49693")
