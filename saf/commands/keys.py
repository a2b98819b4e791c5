"""`saf keys push SELECTOR`: install the operator's SSH public key on nodes."""

from __future__ import annotations

import getpass
import json
import warnings

import click

from saf.commands import common
from saf.errors import SafError
from saf.fleet import Fleet
from saf.keys import (
    ADDED,
    FAILED,
    PRESENT,
    SKIPPED,
    KeyPushed,
    PublicKey,
    find_public_key,
    push_keys,
)

_COLOURS = {ADDED: "green", PRESENT: "cyan", FAILED: "red", SKIPPED: "yellow"}
_LABELS = {ADDED: "added", PRESENT: "already present", FAILED: "failed", SKIPPED: "skipped"}


@click.group("keys")
def keys() -> None:
    """Manage the SSH keys saf logs in with."""


@keys.command("push")
@click.argument("selector")
@click.option("--password-stdin", is_flag=True,
              help="Read the password from the first line of stdin instead of asking.")
@click.option("--key", "key_path", metavar="PATH",
              help="The public key to install (default: the inventory's identity + .pub, "
                   "else ~/.ssh/id_ed25519.pub, id_ecdsa.pub or id_rsa.pub).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per node.")
@click.pass_context
def push(ctx: click.Context, selector: str, password_stdin: bool, key_path: str | None,
         as_json: bool) -> None:
    """Install your public key on the nodes SELECTOR names (e.g. all, beta, tag:mac).

    Nodes where your key already logs in are left alone. For the others, saf asks the login
    password once (it is never stored or logged), appends your key to ~/.ssh/authorized_keys
    unless it is there already, makes ~/.ssh 700 and authorized_keys 600, and proves that key
    login now works. Exits 1 when any node failed.
    """
    inventory = common.inventory(ctx)
    # Read stdin before anything else, so a pipe's writer is never left waiting.
    piped = common.read_stdin_password() if password_stdin else None

    def ask_password() -> str:
        if piped is not None:
            return piped
        try:
            with warnings.catch_warnings():
                # Without a terminal getpass would read stdin with echo on; refuse instead.
                warnings.simplefilter("error", getpass.GetPassWarning)
                password = getpass.getpass("SSH password for the nodes that need it: ")
        except getpass.GetPassWarning:
            raise SafError("no terminal to ask the password on; pass --password-stdin and "
                           "give it on stdin") from None
        except EOFError:
            password = ""
        if not password:
            raise SafError("no password given (pass --password-stdin to read it from stdin)")
        return password

    width = 0  # the longest node name, set by main() once the nodes are known

    def show(event: KeyPushed) -> None:
        if as_json:
            click.echo(json.dumps(event.to_json()))
            return
        label = click.style(f"{_LABELS[event.outcome]:<15}", fg=_COLOURS[event.outcome])
        click.echo(f"{event.node:<{width}}  {label}  {event.message}")

    async def main() -> list[KeyPushed]:
        async with Fleet(inventory) as fleet:
            nodes = await fleet.select(selector)
        node_keys: dict[str, PublicKey] = {n.name: find_public_key(n, key_path) for n in nodes}
        nonlocal width
        width = max(len(n.name) for n in nodes)
        if not as_json:
            shown = sorted({k.path for k in node_keys.values()})
            click.echo(f"installing {', '.join(str(p) for p in shown)} on {len(nodes)} "
                       f"node{'s' if len(nodes) != 1 else ''}", err=True)
        # push_keys emits only KeyPushed, what show() takes.
        return await push_keys(nodes, node_keys, ask_password, emit=show)  # type: ignore[arg-type]

    results = common.run(main())
    if not as_json:
        counts = {o: sum(r.outcome == o for r in results) for o in _LABELS}
        summary = ", ".join(f"{n} {_LABELS[o]}" for o, n in counts.items() if n)
        click.echo(f"{len(results)} node{'s' if len(results) != 1 else ''}: {summary}")
    if any(r.outcome == FAILED for r in results):
        ctx.exit(1)

