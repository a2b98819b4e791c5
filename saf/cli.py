"""The front door: parses the command line and hands off to a face.

Subcommands live one per module in `saf.commands` and are imported only when used, so
`saf exec` never pays for importing the cockpit, and `saf --help` imports none of them: it lists
each command's summary from SUMMARIES below. A SafError becomes a one-line message and a
non-zero exit; Ctrl-C exits 130. Nobody sees a traceback for their own mistake.
"""

from __future__ import annotations

import importlib
import sys

import click

from saf import collector, library_warnings, secrets
from saf.errors import SafError

# name -> "module:attribute" of a click command. Add a line here for each new command, and one
# to SUMMARIES below (docs/architecture.md, "Adding a command").
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
    "up": "saf.commands.up:up",
    "down": "saf.commands.down:down",
    "status": "saf.commands.status:status",
}

# name -> what `saf --help` lists for it: the first sentence of its command's docstring, word for
# word (tests/test_cli_start.py checks it), so listing the commands imports none of them. A
# command missing here is still listed, by importing its module.
SUMMARIES: dict[str, str] = {
    "nodes": ("For each node: reachable or not (and why: refused, timeout, auth, hostkey, dns), "
              "OS, arch, kernel, CPU count, memory, Python version, and round-trip latency; "
              "and the jump hosts saf reaches it through, where any node has one (`jump` in "
              "saf.toml)."),
    "exec": "Run COMMAND on the selected nodes at once, streaming output prefixed by node.",
    "trust": ("Show the SSH host key fingerprint of each selected node and, when you confirm "
              "(or pass --yes), record it in the node's known_hosts, replacing an older key for "
              "that host."),
    "keys": "Manage the SSH keys saf logs in with.",
    "import": "Write a saf inventory (saf.toml) from an Ansible or Ray cluster file.",
    "demo": ("Start a demo cluster on this machine: three nodes (alpha head, beta and gamma "
             "workers) served by SSH servers on loopback with throwaway keys, host keys "
             "verified as for any node."),
    "tui": ("Open the cockpit: every node live (CPU, memory, GPUs, network), drill down with "
            "Enter, `?` for help, Ctrl+P for every command."),
    "record": ("Run the agents on every node and write everything they send to FILE (JSON "
               "lines), without opening the cockpit."),
    "replay": "Open the cockpit on a recording made with `saf record` (or R in the cockpit).",
    "signals": ("Watch, publish, record and replay the cluster's ZeroMQ trading signals (48-byte "
                "AISignal frames)."),
    "doc": ("Print the long-form reference of every saf command (Markdown), generated from "
            "the command line itself so it never goes stale."),
    "run": "Run RECIPE (a file, or the name of a shipped or user recipe) on the nodes.",
    "runs": ("List past recipe runs of this inventory's cluster, newest last (--all: of every "
             "cluster)."),
    "recipes": "List recipes: the ones shipped with saf and those in your recipe folder.",
    "top": ("A live table of the cluster, one row per node: CPU, load, memory, GPUs, the "
            "cluster NIC's traffic, disks and NUMA, refreshed every interval."),
    "serve": ("Run the fleet once and serve it: one agent per node however many watch, a "
              "cockpit for every SSH client (`ssh -p 8022 localhost` after `saf serve --ssh "
              "127.0.0.1:8022`) and every browser tab (--web), /metrics for Prometheus "
              "(--metrics)."),
    "net": "Speed tests between the nodes: a matrix of Gbit/s and round-trip times.",
    "ray": "The Ray cluster: status, jobs, and submitting a job.",
    "doctor": ("Check every node for what stops Ray: SSH key login, Python/Ray versions against "
               "the head's, the head's port in use, the head unreachable from a worker "
               "(firewall), a node that would advertise 127.0.0.1, the macOS variable, `mlx` on "
               "Apple Silicon, clock skew."),
    "models": ("Every model server saf started in the cluster (`saf run models`): node, port, "
               "engine, model, state (ready, loading, starting, exited), pid, uptime, and its "
               "last check's mean TTFT and tokens/s."),
    "wait": "Wait until the selected nodes answer SSH (after a reboot or a network boot).",
    "up": ("Bring the cluster to what saf.toml declares: [up]'s recipes, then Ray, then each "
           "service and model in order, each checked for real (docs/cluster.md)."),
    "down": ("Take down what `saf up` started, in reverse order: models stopped, services "
             "stopped, disabled and removed, Ray stopped; each checked gone."),
    "status": ("The declared cluster against what runs: each node, Ray, service and model, "
               "with a verdict."),
}


class LazyGroup(click.Group):
    """A group whose commands are imported when one runs (or its --help is asked for)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(COMMANDS))

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's own listing, from SUMMARIES instead of the imported commands: a stand-in
        command with the summary as its help shortens it to the width exactly as the real one's
        docstring would be (its first sentence, cut with "..." to fit)."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            command: click.Command | None
            if name in SUMMARIES:
                command = click.Command(name, help=SUMMARIES[name])
            else:
                command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

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
    """The `saf` program. Without `argv` (the console script, `python -m saf`) saf is the
    process's program, and its end is the process's: see `_leaving`; so is its start, which
    runs without the garbage collector until the command's work begins (saf.collector).
    """
    if argv is None:
        collector.pause()
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
    finally:
        if argv is None:
            _leaving()


def _leaving() -> None:
    """Spare the interpreter's exit its garbage collections. What is left when a command ends
    is only torn down, yet the exit runs the collector over every object of every module: 0.15
    s after `saf up`'s imports on a loaded 2-core machine, against 0.02 s with the objects
    frozen (moved where the collector does not look; they are still freed, and their files
    closed, as the modules are cleared). Garbage already unreachable is collected first, so
    its finalizers run as they would have. Only for the program: a process that called
    main(argv) goes on, and its collector must keep seeing everything."""
    import gc

    gc.collect()
    gc.freeze()
