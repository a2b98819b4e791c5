"""Real ZeroMQ sockets: a Python publisher as the seed writes it, a C++ publisher compiled here
against libzmq, bad frames on the wire, recordings and replays, and `saf signals tail`."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import zmq

from saf.signals.book import SignalBook
from saf.signals.codec import SEED_FORMAT, AISignal, decode
from saf.signals.recording import Recorder, read_recording, replay
from saf.signals.subscriber import Subscriber
from tests.helpers.servers import free_port, loopback_has_ipv6

REPO = Path(__file__).resolve().parent.parent
CPP_SOURCE = REPO / "tests" / "fixtures" / "signals" / "aisignal_publisher.cpp"


def f32(value: float) -> float:
    return struct.unpack("f", struct.pack("f", value))[0]


def same(a: AISignal, b: AISignal) -> bool:
    """Equal bit for bit (-0.0 is not 0.0 here)."""
    return all((x.hex() == y.hex()) if isinstance(x, float) else x == y
               for x, y in zip(a, b, strict=True))


class SeedPublisher(threading.Thread):
    """A publisher as the seed architecture shows it: struct.pack("Q16sffff B I", ...) on a
    PUB socket, sending its frames round and round until stopped."""

    def __init__(self, endpoint: str, frames: list[bytes]) -> None:
        super().__init__(daemon=True)
        self.endpoint = endpoint
        self.frames = frames
        self.stop = threading.Event()
        self.bound = threading.Event()

    def run(self) -> None:
        zmq_context = zmq.Context.instance()
        pub = zmq_context.socket(zmq.PUB)
        pub.setsockopt(zmq.IPV6, 1)  # so it can bind tcp://[::1]:PORT too
        pub.bind(self.endpoint)
        self.bound.set()
        try:
            while not self.stop.is_set():
                for frame in self.frames:
                    pub.send(frame)
                time.sleep(0.01)
        finally:
            pub.close(0)

    def __enter__(self) -> SeedPublisher:
        self.start()
        self.bound.wait(5)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.join(5)


def seed_pack(sig: AISignal) -> bytes:
    return struct.pack(SEED_FORMAT, sig.timestamp_ns, sig.symbol.encode(), sig.price_direction,
                       sig.price_confidence, sig.sentiment_score, sig.anomaly_probability,
                       sig.anomaly_type, sig.model_version)


COLLECT_LIMIT = 20.0


async def collect(endpoint: str, distinct: int,
                  **kwargs: object) -> tuple[SignalBook, list[bytes]]:
    """Subscribe until `distinct` different frames have arrived (a safety limit of
    COLLECT_LIMIT seconds, not a timing assertion)."""
    frames: list[bytes] = []
    seen: set[bytes] = set()
    book = SignalBook()

    def sink(batch: list[bytes], recv_ns: int) -> None:
        frames.extend(batch)
        seen.update(batch)
        book.add_many(batch, recv_ns)

    sub = Subscriber([endpoint], sink, tick=book.tick, **kwargs)  # type: ignore[arg-type]
    await asyncio.wait_for(sub.run(until=lambda: len(seen) >= distinct), COLLECT_LIMIT)
    return book, frames


SENT = [
    AISignal(time.time_ns(), "AAPL", f32(0.731), f32(0.912), -0.25, f32(0.031), 0, 7),
    AISignal(1, "MSFT", -1.0, 0.0, 1.0, 1.0, 1, 8),
    AISignal(2**64 - 1, "ABCDEFGHIJKLMNOP", f32(1e-30), f32(1 / 3), f32(0.1), 0.5, 3,
             2**32 - 1),
    AISignal(0, "ETH-USD", f32(-0.7), 0.5, f32(0.2), f32(0.95), 2, 0),
]


@pytest.mark.skipif(not loopback_has_ipv6(), reason="the loopback has no IPv6 address (::1)")
async def test_an_ipv6_endpoint_is_reached_in_brackets() -> None:
    """`tcp://[::1]:PORT` is read bracket-aware and reaches a publisher on ::1 (the SUB socket
    has IPv6 switched on; ZeroMQ refuses such an address otherwise)."""
    endpoint = f"tcp://[::1]:{free_port()}"
    with SeedPublisher(endpoint, [seed_pack(s) for s in SENT]):
        _, frames = await collect(endpoint, len(SENT))
    assert {decode(f) for f in frames} == set(SENT)


async def test_seed_python_publisher_decodes_exactly() -> None:
    """Frames packed with the seed's native format decode to exactly the values sent."""
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    with SeedPublisher(endpoint, [seed_pack(s) for s in SENT]):
        book, frames = await collect(endpoint, len(SENT))
    decoded = {decode(f) for f in frames}
    assert decoded == set(SENT)
    assert book.bad == {}
    assert {r.symbol: r.signal for r in book.snapshot(time.time_ns()).rows} == \
        {s.symbol: s for s in SENT}


@pytest.fixture(scope="module")
def cpp_publisher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The C++ publisher, compiled with g++ against libzmq."""
    if not shutil.which("g++"):
        pytest.skip("g++ is not installed (apt-get install g++)")
    if not any(Path(d, "zmq.h").exists() for d in ("/usr/include", "/usr/local/include")):
        pytest.skip("zmq.h is not installed (apt-get install libzmq3-dev)")
    out = tmp_path_factory.mktemp("cpp") / "aisignal_publisher"
    result = subprocess.run(["g++", "-std=c++17", "-O2", str(CPP_SOURCE), "-lzmq", "-o",
                             str(out)], capture_output=True, text=True, timeout=120)
    if result.returncode:
        pytest.fail(f"g++ failed:\n{result.stderr}")
    return out


def parse_cpp_line(line: str) -> AISignal:
    ts, symbol, d, c, s, p, kind, version = line.split()
    return AISignal(int(ts), symbol, float.fromhex(d), float.fromhex(c), float.fromhex(s),
                    float.fromhex(p), int(kind), int(version))


async def test_cpp_publisher_decodes_exactly(cpp_publisher: Path) -> None:
    """A real C++ AISignal struct, sent with libzmq, decodes to exactly what it printed."""
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    proc = await asyncio.to_thread(subprocess.Popen, [str(cpp_publisher), endpoint, "30"],
                                   stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        expected = []
        for line in proc.stdout:
            if line.strip() == "ready":
                break
            expected.append(parse_cpp_line(line))
        assert len(expected) == 6
        book, frames = await collect(endpoint, len(expected))
    finally:
        proc.kill()
        proc.wait()
    got = {decode(f) for f in frames}
    assert len(got) == len(expected)
    for want in expected:
        match = [g for g in got if g.symbol == want.symbol]
        assert len(match) == 1, (match, want)
        assert same(match[0], want), (match, want)
    assert book.bad == {}


async def test_bad_frames_on_the_wire_are_counted_not_fatal() -> None:
    """A stream mixing good frames with every kind of bad one: each bad frame is counted by
    its reason, and the good ones keep coming."""
    good = seed_pack(SENT[0])
    frames = [
        good,
        good[:40],  # size
        struct.pack(SEED_FORMAT, 1, b"AAPL", float("nan"), 0.5, 0, 0, 0, 1),  # nan
        struct.pack(SEED_FORMAT, 1, b"AAPL", 2.0, 0.5, 0, 0, 0, 1),  # range
        struct.pack(SEED_FORMAT, 1, b"AAPL", 0.5, 0.5, 0, 0, 9, 1),  # anomaly_type
        struct.pack(SEED_FORMAT, 1, b"A\xffPL", 0.5, 0.5, 0, 0, 0, 1),  # symbol
    ]
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    with SeedPublisher(endpoint, frames):
        book, received = await collect(endpoint, len(frames))
    counts = {}
    for frame in received:
        try:
            decode(frame)
        except ValueError as exc:
            counts[exc.reason] = counts.get(exc.reason, 0) + 1  # type: ignore[attr-defined]
    assert book.bad == counts
    assert set(counts) == {"size", "nan", "range", "anomaly_type", "symbol"}
    assert book.total_count() + sum(book.bad.values()) == len(received)


async def test_record_and_replay(tmp_path: Path) -> None:
    """A recording keeps every frame (bad ones too) with its receive time; a replay gives the
    book the same frames at the recorded times."""
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    path = tmp_path / "stream.sig"
    frames = [seed_pack(s) for s in SENT] + [b"bad"]
    with Recorder(path) as recorder, SeedPublisher(endpoint, frames):
        seen: set[bytes] = set()

        def sink(batch: list[bytes], recv_ns: int) -> None:
            recorder.write(batch, recv_ns)
            seen.update(batch)

        sub = Subscriber([endpoint], sink)
        await asyncio.wait_for(sub.run(until=lambda: len(seen) >= len(frames)), 20)
    records = list(read_recording(path))
    assert len(records) == recorder.frames
    assert set(f for _, f in records) == set(frames)
    assert all(t > 0 for t, _ in records)

    book = SignalBook()
    times: list[int] = []

    def into_book(batch: list[bytes], recv_ns: int) -> None:
        times.append(recv_ns)
        book.add_many(batch, recv_ns)

    played = await replay(path, into_book, speed=0)
    assert played == len(records)
    assert times == sorted(set(t for t, _ in records))
    assert book.bad == {"size": sum(1 for _, f in records if f == b"bad")}

    assert path.stat().st_mode & 0o777 == 0o600  # a recording of the stream is the user's alone

    # damaged files: a clear error, not a traceback
    (tmp_path / "junk").write_bytes(b"hello")
    from saf.signals.recording import RecordingError
    with pytest.raises(RecordingError, match="not a saf signal recording"):
        list(read_recording(tmp_path / "junk"))


def saf(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), SAF_INVENTORY="")
    return subprocess.run([sys.executable, "-m", "saf", *args], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=REPO)


def test_cli_tail_json_from_demo_publisher(tmp_path: Path) -> None:
    """`saf signals publish --demo` and `saf signals tail --json` talk to each other; a bad
    frame shows up as a line with its reason."""
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    pub = subprocess.Popen([sys.executable, "-m", "saf", "signals", "publish", "--demo",
                            endpoint, "--bad-every", "5", "--seed", "3"], env=env,
                           stderr=subprocess.PIPE, text=True)
    try:
        result = saf("signals", "tail", endpoint, "--json", "--count", "12")
    finally:
        pub.terminate()
        pub.wait(10)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 12
    bad = [line for line in lines if "bad" in line]
    assert bad
    assert all(b["bad"] == "size" and b["size"] == 40 for b in bad)
    good = [line for line in lines if "bad" not in line]
    assert all(-1 <= g["price_direction"] <= 1 and g["model_version"] == 7 for g in good)


def test_cli_replay_to_a_pub_socket(tmp_path: Path) -> None:
    """`saf signals replay FILE --to ENDPOINT` publishes the recorded frames again."""
    path = tmp_path / "stream.sig"
    with Recorder(path) as recorder:
        recorder.write([seed_pack(s) for s in SENT], 1_000)
        recorder.write([seed_pack(SENT[0])], 2_000)
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    proc = subprocess.Popen([sys.executable, "-m", "saf", "signals", "replay", str(path),
                             "--to", endpoint, "--speed", "0", "--wait", "2"],
                            env=dict(os.environ, PYTHONPATH=str(REPO)),
                            stderr=subprocess.PIPE, text=True)
    try:
        received: list[bytes] = []

        async def listen() -> None:
            sub = Subscriber([endpoint], lambda batch, _: received.extend(batch))
            await asyncio.wait_for(sub.run(until=lambda: len(received) >= 5), 20)

        asyncio.run(listen())
    finally:
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert [decode(f) for f in received] == SENT + [SENT[0]]


def test_cli_replay_shows_table_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "stream.sig"
    with Recorder(path) as recorder:
        recorder.write([seed_pack(s) for s in SENT], 1_700_000_000 * 10**9)
    result = saf("signals", "replay", str(path), "--speed", "0")
    assert result.returncode == 0, result.stderr
    assert "ABCDEFGHIJKLMNOP" in result.stdout
    assert "ETH-USD" in result.stdout
    (tmp_path / "junk").write_text("not a recording")
    result = saf("signals", "replay", str(tmp_path / "junk"))
    assert result.returncode == 2
    assert "not a saf signal recording" in result.stderr
    assert "Traceback" not in result.stderr
    result = saf("signals", "tail", "http://nowhere")
    assert result.returncode == 2
    assert "must look like tcp://" in result.stderr


def test_closing_after_the_publisher_left_never_hangs():
    """Regression: closing the subscriber once its publisher had gone could block the whole
    thread in libzmq (the monitor's PAIR socket was closed before the monitor was disabled),
    which froze the cockpit on quit. Twenty open/cancel cycles in a subprocess must finish."""
    import subprocess
    import sys
    from pathlib import Path

    script = '''
import asyncio, zmq, zmq.asyncio
from saf.signals.subscriber import Subscriber
async def once(i):
    pub = zmq.asyncio.Context.instance().socket(zmq.PUB)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    sub = Subscriber([f"tcp://127.0.0.1:{port}"], lambda frames, now: None)
    task = asyncio.create_task(sub.run())
    await asyncio.sleep(0.2 if i % 2 else 0.05)
    for _ in range(10):
        pub.send(bytes(48))
    await asyncio.sleep(0.05)
    pub.close(0)
    await asyncio.sleep(0.05 * (i % 3))
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
async def main():
    for i in range(20):
        await once(i)
    print("closed 20 times")
asyncio.run(main())
'''
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True,
                          text=True, timeout=90)
    assert done.stdout.strip() == "closed 20 times", done.stderr


@pytest.mark.parametrize(("endpoint", "wide"), [
    ("tcp://127.0.0.1:{port}", False), ("tcp://localhost:{port}", False),
    ("tcp://[::1]:{port}", False), ("tcp://*:{port}", True), ("tcp://0.0.0.0:{port}", True),
])
def test_publishing_beyond_loopback_is_said(endpoint: str, wide: bool) -> None:
    """saf binds to loopback unless told otherwise; told otherwise, it says so."""
    endpoint = endpoint.format(port=free_port())
    done = saf("signals", "publish", "--demo", endpoint, "--duration", "0.2")
    assert done.returncode == 0, done.stderr
    warned = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert warned == ([f"warning: {endpoint} accepts subscribers from other machines, not "
                       "only this one (bind tcp://127.0.0.1:PORT to keep it local)"]
                      if wide else [])
