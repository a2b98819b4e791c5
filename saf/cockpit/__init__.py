"""The cockpit's UI-free half: what the front door hands the Textual app (its context and
settings), built without importing textual."""
