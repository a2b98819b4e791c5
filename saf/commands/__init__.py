"""One module per saf command, named for it: `saf nodes` is saf.commands.nodes, `saf ray` is
saf.commands.ray. Only a command whose name is a Python keyword takes the suffix `_cmd`
(`saf import` is saf.commands.import_cmd), since `import saf.commands.import` cannot be
written. `common` holds what several commands share and is no command. `saf.cli.COMMANDS`
lists them (tests/test_command_names.py keeps this rule), and `saf.cli.SUMMARIES` says what
`saf --help` lists for each. A command module imports what it runs inside the function that
runs it, so `saf COMMAND --help` loads none of it (docs/architecture.md, "Adding a command")."""
