"""`saf replay FILE`: the cockpit on a recording, no cluster needed."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("replay")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--speed", type=click.FloatRange(min=0.01, max=1000), default=1.0,
              show_default=True, help="Play this many times faster than recorded.")
@click.option("--start", "start", type=click.FloatRange(min=0), default=0.0,
              help="Begin this many seconds into the recording.")
def replay(file: Path, speed: float, start: float) -> None:
    """Open the cockpit on a recording made with `saf record` (or R in the cockpit).

    Space pauses, Left/Right go back/forward 10 s, < and > halve/double the speed. Actions
    that change a node are off: there is no cluster behind a replay.
    """
    from saf.recording import load_recording
    from saf.screens.app import make_app
    from saf.recording import Replayer
    from saf.screens.settings import load_settings

    recording = load_recording(file)
    settings = load_settings()

    def source(emit):  # type: ignore[no-untyped-def]
        return Replayer(recording, emit, speed=speed, start_at=start)

    app = make_app(source, recording.nodes, settings=settings, readonly=True,
                   readonly_reason="a replay has no cluster behind it",
                   cluster=recording.cluster, replay_label=file.name)
    app.run()
