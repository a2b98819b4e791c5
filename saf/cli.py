"""The front door: parses the command line and hands off to a face.

Subcommands live one per module in `saf.commands` and are imported only when used, so
`saf exec` never pays for importing the cockpit. A SafError becomes a one-line message and a
non-zero exit; Ctrl-C exits 130. Nobody sees a traceback for their own mistake.
"""

from __future__ import annotations

import importlib
import sys

import click

from saf import library_warnings, secrets
from saf.errors import SafError

# name -> "module:attribute" of a click command. Add a line here for each new command.
COMMANDS: dict[str, str] = {
    "nodes": "saf.commands.nodes:nodes",
    "exec": "saf.commands.exec:exec_command",
    "trust": "saf.commands.trust:trust",
    "keys": "saf.commands.keys:keys",
    "import": "saf.commands.import_cmd:import_group",
    "demo": "saf.commands.demo:demo",
    "tui": "saf.commands.tui:tui",
    "record": "saf.commands.record:record",
    "replay": "saf.commands.replay:replay",
    "signals": "saf.commands.signals:signals",
    "doc": "saf.commands.doc:doc",
    "run": "saf.commands.run:run",
    "runs": "saf.commands.runs:runs",
    "recipes": "saf.commands.recipes:recipes",
    "top": "saf.commands.top:top",
    "serve": "saf.commands.serve:serve",
    "net": "saf.commands.net:net",
    "ray": "saf.commands.ray:ray",
    "doctor": "saf.commands.doctor:doctor",
    "models": "saf.commands.models:models",
    "wait": "saf.commands.wait:wait",
    "status": "saf.commands.status:status",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(COMMANDS))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in COMMANDS:
            module, _, attr = COMMANDS[name].partition(":")
            command = getattr(importlib.import_module(module), attr)
            if not isinstance(command, click.Command):  # a mistake in COMMANDS
                raise TypeError(f"{COMMANDS[name]} is not a click command")
            return command
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup, invoke_without_command=True,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--inventory", "-i", metavar="FILE", envvar="SAF_INVENTORY",
              help="The inventory to use (default: ./saf.toml, then the config folder).")
@click.option("--readonly", is_flag=True, help="Open the cockpit with node-changing actions off.")
@click.version_option(package_name="saf", prog_name="saf")  # read when asked
@click.pass_context
def cli(ctx: click.Context, inventory: str | None, readonly: bool) -> None:
    """saf: a terminal cockpit for small AI clusters.

    Reaches every node of the inventory over SSH, runs commands and recipes on them, and shows
    live GPU, NUMA, network and signal metrics.
    """
    ctx.ensure_object(dict)
    ctx.obj["inventory"] = inventory
    ctx.obj["readonly"] = readonly
    if ctx.invoked_subcommand is None:
        from saf.commands.tui import tui

        ctx.invoke(tui)


def main(argv: list[str] | None = None) -> None:
    library_warnings.keep_out()
    try:
        # Without standalone mode click returns ctx.exit()'s code instead of exiting.
        code = cli.main(args=argv, prog_name="saf", standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except SafError as exc:
        click.secho(f"saf: {secrets.redact(str(exc))}", fg="red", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("saf: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("saf: interrupted", err=True)
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except BrokenPipeError:
        sys.exit(0)
