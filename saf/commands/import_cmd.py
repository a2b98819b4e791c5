"""`saf import ansible|ray FILE`: write a saf inventory from an Ansible or Ray file."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from saf.errors import ConfigError, SafError

if TYPE_CHECKING:
    from saf.inventory.importers import Draft


@click.group("import")
def import_group() -> None:
    """Write a saf inventory (saf.toml) from an Ansible or Ray cluster file.

    The result is checked with the same rules as a hand-written saf.toml before it is
    written; an existing file is never replaced without --force.
    """


def _options(fn: Callable[..., None]) -> Callable[..., None]:
    fn = click.option("--force", is_flag=True, help="Replace OUTPUT if it exists.")(fn)
    fn = click.option("--name", "cluster_name", metavar="NAME",
                      help="The cluster's name (default: from the file, else 'saf').")(fn)
    fn = click.option("-o", "--output", metavar="OUTPUT", default="saf.toml",
                      show_default=True, help="Where to write the inventory ('-' prints it).")(fn)
    fn = click.argument("file", type=click.Path(dir_okay=False, path_type=Path))(fn)
    return fn


@import_group.command("ansible")
@_options
def ansible(file: Path, output: str, cluster_name: str | None, force: bool) -> None:
    """Import an Ansible INI inventory.

    Groups become roles ([head], [control], [compute] and [workers] ...) or tags (every other
    group); ansible_host, ansible_user, ansible_port, ansible_python_interpreter and
    ansible_ssh_private_key_file become the node's host, user, port, python and identity;
    other variables become node vars. [group:vars] and [group:children] are followed.
    """
    from saf.inventory.importers import import_ansible

    _write(import_ansible(file), "ansible", output, cluster_name, force)


@import_group.command("ray")
@_options
def ray(file: Path, output: str, cluster_name: str | None, force: bool) -> None:
    """Import a Ray cluster YAML (provider type local).

    head_ip becomes the head node, each of worker_ips a worker; auth.ssh_user and
    auth.ssh_private_key become the default user and identity.
    """
    from saf.inventory.importers import import_ray

    _write(import_ray(file), "ray", output, cluster_name, force)


def _write(draft: Draft, tool: str, output: str, cluster_name: str | None,
           force: bool) -> None:
    if cluster_name:
        draft.cluster_name = cluster_name
    text = draft.to_toml(tool)
    target = None if output == "-" else Path(output).expanduser()
    inventory = draft.validate(text, target)
    for warning in draft.warnings:
        click.secho(f"saf: {draft.source}: {warning}", fg="yellow", err=True)
    if target is None:
        click.echo(text, nl=False)
        return
    write_atomically(target, text, replace=force)
    roles = {role: [n.name for n in inventory.nodes if role in n.roles]
             for role in ("head", "control", "worker")}
    parts = [f"{role}: {', '.join(names)}" for role, names in roles.items() if names]
    summary = f" ({'; '.join(parts)})" if parts else ""
    click.echo(f"wrote {target}: {len(inventory.nodes)} nodes{summary}")
    click.echo(f"next: `saf --inventory {target} nodes` checks that each one answers")


def write_atomically(target: Path, text: str, *, replace: bool) -> None:
    """Write `text` to `target` through a temporary file in the same folder, so a reader
    sees the old file or the whole new one. Without `replace`, an existing file is kept
    (and the check is atomic too: the new file is linked into place only if none exists)."""
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise ConfigError(target, f"folder {folder} does not exist")
    if target.exists() and not replace:
        raise _exists(target)
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise ConfigError(target, f"cannot write: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        if replace:
            os.replace(tmp, target)
        else:
            try:
                os.link(tmp, target)
            except FileExistsError:
                raise _exists(target) from None
            except OSError:  # a file system without hard links: the check above stands
                os.replace(tmp, target)
    except OSError as exc:
        raise ConfigError(target, f"cannot write: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _exists(target: Path) -> SafError:
    return ConfigError(target, "already exists; pass --force to replace it, or -o to write "
                       "somewhere else")
