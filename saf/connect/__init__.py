"""Reaching nodes: one async interface, an SSH and a local implementation, and a pool."""

from saf.connect.base import Connector, Forward, OutputCallback, RemoteProcess, RunResult

__all__ = ["Connector", "Forward", "OutputCallback", "RemoteProcess", "RunResult"]
