"""`saf doctor`: what stops a Ray cluster from forming, checked on every node at once."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from saf import defaults
from saf.commands import common

if TYPE_CHECKING:
    from saf.ray.doctor import Finding


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per finding.")
@click.option("--port", type=click.IntRange(1, 65535), default=defaults.RAY_PORT,
              show_default=True, help="The head's Ray (GCS) port.")
@click.option("--temp-dir", default=defaults.RAY_TEMP_DIR, show_default=True,
              help="Ray's temp folder on the nodes.")
@click.pass_context
def doctor(ctx: click.Context, as_json: bool, port: int, temp_dir: str) -> None:
    """Check every node for what stops Ray: SSH key login, Python/Ray versions against the
    head's, the head's port in use, the head unreachable from a worker (firewall), a node
    that would advertise 127.0.0.1, the macOS variable, `mlx` on Apple Silicon, clock skew.

    Each check is pass, warn or fail with one line of evidence and the fix. Exits 1 when any
    check fails.
    """
    from saf.fleet import Fleet
    from saf.ray.doctor import examine

    inventory = common.inventory(ctx)

    async def go() -> list[Finding]:
        async with Fleet(inventory) as fleet:
            return await examine(fleet, port=port, temp_dir=temp_dir)

    found = common.run(go())
    # Rich, only once there is something to print: not part of the wait for the first answer.
    from saf.render.console import print_json_line
    from saf.render.doctor_view import doctor_table

    if as_json:
        for finding in found:
            print_json_line(finding.to_json())
    else:
        doctor_table(found)
    if any(f.status == "fail" for f in found):
        ctx.exit(1)
