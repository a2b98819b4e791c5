"""saf: a terminal cockpit for small AI clusters."""

__version__ = "0.1.0"
