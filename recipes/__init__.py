"""The recipes that ship with saf, as TOML files (read with importlib.resources)."""
