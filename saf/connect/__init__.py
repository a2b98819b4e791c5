"""Reaching nodes: one async interface, an SSH and a local implementation, and a pool."""

from saf.connect import libraries

# First, before any module of this package imports asyncssh: its import without the library
# search that runs ldconfig, gcc and ld (saf.connect.libraries).
libraries.import_asyncssh()

from saf.connect.base import (  # noqa: E402
    Connector,
    Forward,
    OutputCallback,
    RemoteProcess,
    RunResult,
)

__all__ = ["Connector", "Forward", "OutputCallback", "RemoteProcess", "RunResult"]
