"""Headless faces: Rich renderers and JSON-lines output for saf's events."""
