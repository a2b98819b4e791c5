"""saf: a terminal cockpit for small AI clusters."""

from __future__ import annotations


def __getattr__(name: str) -> str:
    # The version is written once, in pyproject.toml, and read from the installed package's
    # metadata when asked: importlib.metadata costs ~20 ms at import, which every saf process
    # (the CLI, each `saf serve` client) would pay at start for a value it rarely shows.
    if name == "__version__":
        from importlib.metadata import version
        return version("saf")
    raise AttributeError(f"module 'saf' has no attribute {name!r}")
