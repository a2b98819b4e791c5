"""The cockpit: saf's Textual app (`screens.app.make_app`), one screen per module."""
