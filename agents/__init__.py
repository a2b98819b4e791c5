"""The saf node agent: runs ON each node, never imports saf. See agents/protocol.py."""
