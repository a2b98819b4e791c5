"""One module per saf command; `saf.cli.COMMANDS` lists them."""
