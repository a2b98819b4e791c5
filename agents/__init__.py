"""The saf node agent: runs ON each node, never imports saf. See agents/protocol.py.

Python >= 3.9, standard library only, plus psutil and pynvml when they are importable.
"""
