"""Jumbo frames as one transaction: the interface that carries each node's cluster address,
the armed revert, the don't-fragment check of every link (docs/jumbo-frames.md)."""
