"""Recordings (saf/recording.py) and the graph helpers the screens draw with."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from pathlib import Path

import pytest

from saf.errors import ConfigError
from saf.format import downsample, sparkline
from saf.inventory.model import Node
from saf.metrics.events import AgentStatus, HelloReceived, SampleReceived
from saf.recording import PACE, Recording, RecordingWriter, Replayer, load_recording
from tests.fixtures.frames.synth import T0, fleet, run

FRAMES = Path(__file__).parent / "fixtures" / "frames"


def test_round_trip_keeps_every_event(tmp_path):
    frame = {"type": "sample", "seq": 1, "time": 5.0, "cpu": {"percent": 12.5}}
    events = [AgentStatus(node="a", status="connecting", time=1.0),
              HelloReceived(node="a", frame={"type": "hello", "protocol": 1},
                            raw='{"type":"hello","protocol":1}', time=2.0),
              SampleReceived(node="a", frame=frame, raw=json.dumps(frame), time=3.0)]
    path = tmp_path / "r.jsonl"
    with RecordingWriter(path, [Node("a", "h", roles=("head",))], cluster="c") as writer:
        for e in events:
            writer.write(e)
    back = load_recording(path)
    assert back.cluster == "c"
    assert back.nodes[0].roles == ("head",)
    assert list(back.events) == events
    assert '"frame"' not in path.read_text().splitlines()[3]  # each frame stored once


def test_damaged_recording_names_the_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    lines = (FRAMES / "healthy-3-nodes.jsonl").read_text().splitlines()[:5]
    lines[3] = lines[3][:40]
    path.write_text("\n".join(lines))
    with pytest.raises(ConfigError, match=r"bad\.jsonl:4: not JSON"):
        load_recording(path)
    lines = (FRAMES / "healthy-3-nodes.jsonl").read_text().splitlines()[:10]
    sample = next(i for i, line in enumerate(lines) if '"agent_sample"' in line)
    lines[sample] = lines[sample].replace('\\"cpu\\":{', '\\"cpu\\":\\"high\\",\\"x\\":{', 1)
    path.write_text("\n".join(lines))
    with pytest.raises(ConfigError, match=rf"bad\.jsonl:{sample + 1}: not a recorded event: "
                                          r"sample\.cpu: expected an object, got 'high'"):
        load_recording(path)  # a frame edited in the file meets the live gate
    path.write_text('{"something": "else"}\n')
    with pytest.raises(ConfigError, match="not a saf recording"):
        load_recording(path)
    # The header is checked whole too (its nodes were read unchecked: a KeyError traceback).
    path.write_text('{"saf_recording": 1, "nodes": [{"host": "10.0.0.1"}]}\n')
    with pytest.raises(ConfigError, match=r"bad\.jsonl:1: the recording's header is not "
                                          r"valid: Object missing required field `name` - at "
                                          r"`\$\.nodes\[0\]`"):
        load_recording(path)
    path.write_text('{"saf_recording": 1, "started": "today"}\n')
    with pytest.raises(ConfigError, match=r"bad\.jsonl:1: .* at `\$\.started`"):
        load_recording(path)


async def test_instant_replay_fills_the_store_up_to_a_moment():
    recording = load_recording(FRAMES / "lost-node.jsonl")
    seen = []
    player = Replayer(recording, seen.append, instant=True, until=10)
    await player.start()
    expected = sum(1 for e in recording.events if isinstance(e, SampleReceived)
                   and e.node == "alpha" and e.time <= recording.start + 10)
    assert player.store.node("alpha").samples == expected > 5
    assert player.clock() == pytest.approx(recording.start + 10)
    assert seen[-1].kind == "replay_position"


async def test_a_playing_replay_delivers_what_is_due_in_a_few_batches_a_second():
    """64 unsynchronised nodes at 1 Hz: the replay delivers their samples a few times a second
    (each wake-up costs CPU; the cockpit hands samples on once a second), never ahead of its
    clock, and nothing due is held back for long."""
    machines, nodes = fleet(64)
    recording = Recording(path=None, started=T0, cluster="rack", nodes=tuple(nodes),
                          events=tuple(run(machines, 10)))
    delivered: list[tuple[float, float, float]] = []  # event's time, replay clock, wall clock
    player = Replayer(recording, lambda e: delivered.append(
        (e.time, player.clock(), time.monotonic())))
    await player.start()
    await asyncio.sleep(2.0)
    clock = player.clock()
    await player.stop()
    samples = [d for d in delivered if d[0] > recording.start]  # after the first moment's
    assert len(samples) > 64
    assert all(event <= at for event, at, _ in samples)  # never ahead of the clock
    gaps = (later[2] - earlier[2] for earlier, later in itertools.pairwise(samples))
    batches = 1 + sum(1 for gap in gaps if gap > PACE / 5)
    assert batches <= 2.0 / PACE + 2, batches  # not a wake-up per event (~128 of them)
    due = sum(1 for e in recording.events if e.time <= clock - PACE - 0.5)
    assert len(delivered) >= due  # what fell due was delivered, a pace late at most


def test_downsample_keeps_spikes():
    values = [0.0] * 100
    values[37] = 50.0
    buckets = downsample(values, 10)
    assert len(buckets) == 10
    assert buckets[3] == (0.0, 50.0)
    assert downsample([1.0, None, 3.0], 10) == [(1.0, 1.0), None, (3.0, 3.0)]
    line = sparkline(values, 10, top=100.0)
    assert len(line) == 10
    assert line[3] != line[0]
    assert sparkline([], 5) == "     "


@pytest.mark.parametrize("option", ["--on", "--nodes"])
def test_saf_record_takes_on_and_its_old_name_with_a_notice(asyncssh_cluster, tmp_path, option):
    """`--on` selects the nodes, as in every other command; `--nodes`, its old name, still
    works and says once, on stderr and in saf's words, that it is deprecated."""
    path = tmp_path / "r.jsonl"
    done = asyncssh_cluster.saf("record", str(path), "--seconds", "0.5", "--interval", "0.2",
                                option, "beta")
    assert done.returncode == 0, done.stderr
    assert [n.name for n in load_recording(path).nodes] == ["beta"]
    said = [line for line in done.stderr.splitlines() if "deprecated" in line.lower()]
    assert said == (["saf record: --nodes is deprecated, use --on (the same selector)"]
                    if option == "--nodes" else [])
    assert "--nodes" not in done.stdout


def test_saf_record_refuses_both_names_of_its_selector(asyncssh_cluster, tmp_path):
    done = asyncssh_cluster.saf("record", str(tmp_path / "r.jsonl"), "--on", "beta",
                                "--nodes", "gamma")
    assert done.returncode == 2
    assert "give --on only" in done.stderr


def test_saf_stopping_its_links_is_not_recorded(tmp_path):
    """The `stopped` statuses saf sends as it quits (the cockpit, `saf record`) are its own
    news, not the nodes': the recording ends where the cluster was last watched."""
    path = tmp_path / "r.jsonl"
    with RecordingWriter(path, [Node("a", "h")], cluster="c") as writer:
        writer.write(AgentStatus(node="a", status="up", time=1.0))
        writer.write(AgentStatus(node="a", status="stopped", time=2.0))
    assert [e.status for e in load_recording(path).events] == ["up"]


async def test_a_replay_ends_with_its_nodes_as_they_were_last_seen():
    """A recording made with R in `saf demo` and ended by quitting it (so it ends with the
    three `stopped` statuses older saf wrote): at the end of its replay the header and the
    rows agree, every node up with its figures, not `nodes 0/3 up  memory 0B/71G` above rows
    of figures."""
    from tests.helpers.snapshots import screen_lines
    from tests.snapshot_apps._common import cockpit

    recording = load_recording(FRAMES / "demo-recorded.jsonl")
    assert all(e.status == "up" for e in recording.events if isinstance(e, AgentStatus)
               and e.time > recording.events[-4].time - 1)
    app = cockpit("demo-recorded.jsonl")
    async with app.run_test(size=(120, 40)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        lines = screen_lines(app)
        assert "nodes 3/3 up" in lines[0], lines[0]
        assert "memory 0B/" not in lines[0], lines[0]
        rows = [line for line in lines if line.startswith(("alpha ", "beta ", "gamma "))]
        assert len(rows) == 3, rows
        assert all("● up" in row for row in rows), rows
