"""Recordings of a signal stream: the raw frames with their receive times, to replay later.

The file is binary, so a recording keeps every frame byte for byte, bad ones included:

    header   8 bytes   b"SAFSIG1\\n"
    record   12 bytes  "<QI": receive time (ns since the epoch), frame length
             N bytes   the frame as received

A replay paces frames by their receive times divided by the speed (speed 0: as fast as
possible) and hands them to a sink: a PUB socket, a book, or the JSON printer.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from saf.errors import SafError
from saf.paths import open_private

MAGIC = b"SAFSIG1\n"
_RECORD = struct.Struct("<QI")
MAX_FRAME = 1 << 20  # a length past this means the file is not a recording or is damaged


class RecordingError(SafError):
    exit_code = 2
    title = "Bad recording"


class Recorder:
    """Appends batches of frames to a recording file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.file: IO[bytes] = open_private(path, "wb")
        except OSError as exc:
            raise RecordingError(f"{path}: cannot write: {exc.strerror or exc}") from None
        self.file.write(MAGIC)
        self.frames = 0

    def write(self, frames: list[bytes], recv_ns: int) -> None:
        pack = _RECORD.pack
        self.file.write(b"".join(pack(recv_ns, len(f)) + f for f in frames))
        self.frames += len(frames)

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_recording(path: Path) -> Iterator[tuple[int, bytes]]:
    """(receive time ns, frame) for each frame of a recording. A truncated last record (a
    recorder killed mid-write) ends the stream; anything else wrong is a RecordingError."""
    try:
        f = path.open("rb")
    except OSError as exc:
        raise RecordingError(f"{path}: cannot read: {exc.strerror or exc}") from None
    with f:
        if f.read(len(MAGIC)) != MAGIC:
            raise RecordingError(f"{path}: not a saf signal recording (no SAFSIG1 header)")
        offset = len(MAGIC)
        while True:
            head = f.read(_RECORD.size)
            if len(head) < _RECORD.size:
                return
            recv_ns, length = _RECORD.unpack(head)
            if length > MAX_FRAME:
                raise RecordingError(f"{path}: damaged at byte {offset} (a frame of {length} "
                                     "bytes)")
            frame = f.read(length)
            if len(frame) < length:
                return
            offset += _RECORD.size + length
            yield recv_ns, frame


async def replay(path: Path, sink: Callable[[list[bytes], int], None], *,
                 speed: float = 1.0, clock: Callable[[], int] = time.time_ns,
                 retime: bool = False) -> int:
    """Play a recording into `sink(frames, recv_ns)`, frames received together kept together.
    With speed S the gaps between receive times are divided by S (0: no waiting). The sink is
    given the recorded receive time, or with `retime` the time of playing. Returns the number
    of frames played."""
    if speed < 0:
        raise RecordingError("the replay speed must be 0 (as fast as possible) or positive")
    played = 0
    first_ns: int | None = None
    start = time.monotonic()
    batch: list[bytes] = []
    batch_ns = 0
    batches = 0
    for recv_ns, frame in read_recording(path):
        if batch and recv_ns != batch_ns:
            sink(batch, clock() if retime else batch_ns)
            played += len(batch)
            batch = []
        if not batch:
            if first_ns is None:
                first_ns = recv_ns
            if speed > 0:
                wait = (recv_ns - first_ns) / 1e9 / speed - (time.monotonic() - start)
                if wait > 0:
                    await asyncio.sleep(wait)
            elif batches % 256 == 0:
                await asyncio.sleep(0)  # as fast as possible, but let the app run
            batches += 1
        batch.append(frame)
        batch_ns = recv_ns
    if batch:
        sink(batch, clock() if retime else batch_ns)
        played += len(batch)
    return played
