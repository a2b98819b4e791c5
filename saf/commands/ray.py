"""`saf ray status|jobs|submit`: the Ray cluster through its dashboard, reached by an SSH
forward to the head (saf.ray.session)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from saf import defaults
from saf.commands import common

if TYPE_CHECKING:
    from saf.ray.status import RayJob, RayStatus

_port = click.option("--dashboard-port", "port", type=click.IntRange(1, 65535), default=None,
                     help="The dashboard's port on the head (default: what ray-up recorded, "
                          "else 8265).")
_temp = click.option("--temp-dir", default=defaults.RAY_TEMP_DIR, show_default=True,
                     help="Ray's temp folder on the head (where ray-up recorded its settings).")


@click.group("ray")
def ray() -> None:
    """The Ray cluster: status, jobs, and submitting a job.

    Start and stop it with `saf run ray-up` and `saf run ray-down`; match Python and Ray on
    every node first with `saf run python-match`.
    """


@ray.command("status")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@_port
@_temp
@click.pass_context
def status(ctx: click.Context, as_json: bool, port: int | None, temp_dir: str) -> None:
    """Nodes (alive or dead, address, resources and their use), totals, jobs and the
    dashboard's URL. Exits 1 when a node is down (no ALIVE entry of its name: a restarted
    node's old DEAD entry does not count); Ray not running is an error."""
    from saf.fleet import Fleet
    from saf.ray.session import open_dashboard
    from saf.ray.status import read_status

    inventory = common.inventory(ctx)

    async def go() -> RayStatus:
        async with Fleet(inventory) as fleet, open_dashboard(fleet, port=port,
                                                             temp_dir=temp_dir) as dash:
            return await read_status(dash)

    result = common.run(go())
    # Rich, only once there is something to print: not part of the wait for the first answer.
    from saf.render.console import console, print_json_line
    from saf.render.ray_view import status_view

    if as_json:
        print_json_line(result.to_json())
    else:
        out = console()
        out.print(status_view(result, out.width))
    if result.down:
        ctx.exit(1)


@ray.command("jobs")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per job.")
@_port
@_temp
@click.pass_context
def jobs(ctx: click.Context, as_json: bool, port: int | None, temp_dir: str) -> None:
    """The cluster's jobs, newest first: id, state, duration, entrypoint."""
    from saf.fleet import Fleet
    from saf.ray.session import open_dashboard
    from saf.ray.status import parse_jobs

    inventory = common.inventory(ctx)

    async def go() -> list[RayJob]:
        async with Fleet(inventory) as fleet, open_dashboard(fleet, port=port,
                                                             temp_dir=temp_dir) as dash:
            return parse_jobs(await dash.jobs())

    found = common.run(go())
    # Rich, only once there is something to print: not part of the wait for the first answer.
    from saf.render.console import console, print_json_line
    from saf.render.ray_view import jobs_table

    if as_json:
        for job in found:
            print_json_line({"job_id": job.job_id, "status": job.status,
                             "entrypoint": job.entrypoint, "start": job.start, "end": job.end,
                             "duration": job.duration(), "message": job.message})
    else:
        out = console()
        out.print(jobs_table(found, out.width))


@ray.command("submit", context_settings={"ignore_unknown_options": True})
@click.option("--working-dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("."), show_default=True,
              help="Uploaded to the cluster; the job runs inside it.")
@click.option("--no-wait", is_flag=True, help="Print the job's id and return at once.")
@_port
@_temp
@click.argument("entrypoint", nargs=-1, required=True)
@click.pass_context
def submit_cmd(ctx: click.Context, working_dir: Path, no_wait: bool, port: int | None,
               temp_dir: str, entrypoint: tuple[str, ...]) -> None:
    """Submit a job: `saf ray submit -- python script.py`. The working directory is uploaded,
    the job's logs are followed until it ends, and saf exits with the job's exit status.
    Ctrl-C stops the job."""
    import asyncio

    from saf.fleet import Fleet
    from saf.ray.jobs import follow, submit
    from saf.ray.session import open_dashboard
    from saf.render.console import console

    inventory = common.inventory(ctx)
    line = " ".join(entrypoint)

    def out(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    async def go() -> int:
        async with Fleet(inventory) as fleet, open_dashboard(fleet, port=port,
                                                             temp_dir=temp_dir) as dash:
            job_id = await submit(dash, line, working_dir)
            err = console(stderr=True)  # Rich, once the head has answered: not before
            err.print(f"job {job_id} submitted to {dash.url}", style="dim")
            if no_wait:
                print(job_id)
                return 0
            try:
                done = await follow(dash, job_id, out)
            except asyncio.CancelledError:
                await asyncio.shield(dash.stop_job(job_id))
                err.print(f"job {job_id} stopped", style="yellow")
                raise
            style = "green" if done.status == "SUCCEEDED" else "red"
            why = done.message.splitlines()[0] if done.message else ""
            err.print(f"job {job_id} {done.status}"
                      + (f" (exit status {done.exit_code})" if done.exit_code else "")
                      + (f": {why}" if done.status != "SUCCEEDED" and why else ""), style=style)
            return done.exit_code

    code = common.run(go())
    if code:
        ctx.exit(code)
