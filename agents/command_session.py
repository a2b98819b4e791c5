"""saf's command session: one program per node per recipe run that runs the node's commands.

saf starts it once over the node's SSH connection (`python3 -S -c SOURCE`, nothing installed)
and sends it commands as JSON lines on stdin; it runs each under /bin/sh in a process group of
its own and streams each output line and the exit status back as JSON lines on stdout. One
exec channel per node per run instead of one per command: that is the whole point (as
Mitogen does for Ansible).

Requests (stdin), one JSON object a line:
    {"op": "run", "id": N, "cmd": "..."}   start a command (stdin /dev/null)
    {"op": "cancel", "id": N}              stop that command's process group (TERM, then KILL)
    end of stdin                           stop every command still running, then exit
Frames (stdout):
    {"t": "hello", "v": 1, "pid": P}                     once, when ready
    {"t": "out", "id": N, "s": "o"|"e", "d": "...", "more": false}
                                  a line (without its newline) of stdout ("o") or stderr ("e");
                                  a line longer than PART comes in parts, all but the last
                                  with "more": true
    {"t": "exit", "id": N, "rc": R}   after the command's last output; a command killed by a
                                  signal reports 128 + its number, as sh would

Stdlib only, and Python 3.6-clean (its types are comments, so even Python 2 reads it and says
it is too old, exit status 3): an old node fails before the hello, and saf tries python3, then
runs that node's commands one channel each. Imports nothing of saf: it is sent as text.
"""

import codecs
import json
import os
import signal
import subprocess
import sys
import threading

if False:  # for the type checker only: typing is not imported on the node
    from collections.abc import Iterable  # noqa: F401
    from typing import BinaryIO  # noqa: F401

VERSION = 1
MIN_PYTHON = (3, 6)
PART = 256 * 1024  # the longest piece of one line in one frame
KILL_AFTER = 2.0   # seconds between TERM and KILL for a cancelled command


class Session:
    def __init__(self, out):
        # type: (BinaryIO) -> None
        self.out = out
        self.lock = threading.Lock()
        self.running = {}  # type: dict[int, subprocess.Popen[bytes]]  # while they run

    def send(self, frame):
        # type: (dict[str, object]) -> None
        data = (json.dumps(frame, separators=(",", ":")) + "\n").encode("utf-8")
        with self.lock:
            try:
                self.out.write(data)
                self.out.flush()
            except (OSError, ValueError):
                pass  # saf has gone; stdin's end stops everything

    def run(self, ident, command):
        # type: (int, str) -> None
        try:
            proc = subprocess.Popen(
                ["/bin/sh", "-c", command], stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                close_fds=True)
        except Exception as exc:  # noqa: BLE001 - any failure is this command's, told to saf
            self.send({"t": "out", "id": ident, "s": "e", "more": False,
                       "d": "saf's command session could not start sh: %s" % (exc,)})
            self.send({"t": "exit", "id": ident, "rc": 127})
            return
        with self.lock:
            self.running[ident] = proc
        pumps = [threading.Thread(target=self.pump, args=(ident, proc.stdout, "o")),
                 threading.Thread(target=self.pump, args=(ident, proc.stderr, "e"))]
        for pump in pumps:
            pump.daemon = True
            pump.start()
        waiter = threading.Thread(target=self.finish, args=(ident, proc, pumps))
        waiter.daemon = True
        waiter.start()

    def pump(self, ident, stream, name):
        # type: (int, BinaryIO, str) -> None
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        while True:
            piece = stream.readline(PART)
            if not piece:
                break
            whole = piece.endswith(b"\n")
            text = decoder.decode(piece.rstrip(b"\r\n") if whole else piece, final=whole)
            self.send({"t": "out", "id": ident, "s": name, "d": text, "more": not whole})
        stream.close()

    def finish(self, ident, proc, pumps):
        # type: (int, subprocess.Popen[bytes], list[threading.Thread]) -> None
        # Output first, then the status: a background child that keeps the pipes open keeps
        # the command going, as it would on its own SSH channel.
        for pump in pumps:
            pump.join()
        code = proc.wait()
        with self.lock:
            self.running.pop(ident, None)
        self.send({"t": "exit", "id": ident, "rc": 128 - code if code < 0 else code})

    def cancel(self, ident):
        # type: (int) -> None
        with self.lock:
            proc = self.running.get(ident)
        if proc is not None:
            stop_group(proc)

    def stop_all(self):
        # type: () -> None
        with self.lock:
            procs = list(self.running.values())
        for proc in procs:
            stop_group(proc)


def stop_group(proc):
    # type: (subprocess.Popen[bytes]) -> None
    """TERM the command's process group now and KILL it after KILL_AFTER seconds."""
    signal_group(proc.pid, signal.SIGTERM)
    timer = threading.Timer(KILL_AFTER, signal_group, (proc.pid, signal.SIGKILL))
    timer.daemon = True
    timer.start()


def signal_group(pid, sig):
    # type: (int, int) -> None
    try:
        os.killpg(pid, sig)
    except OSError:
        pass  # already gone


def serve(requests, out):
    # type: (Iterable[bytes], BinaryIO) -> None
    session = Session(out)
    session.send({"t": "hello", "v": VERSION, "pid": os.getpid()})
    for line in requests:
        try:
            request = json.loads(line.decode("utf-8"))
            op, ident = request["op"], int(request["id"])
            if op == "run":
                session.run(ident, str(request["cmd"]))
            elif op == "cancel":
                session.cancel(ident)
        except (ValueError, KeyError, TypeError, AttributeError):
            continue  # not a request of ours: saf wrote it, so there is none to tell
    # stdin ended: saf closed the session, or the connection dropped. Nothing it started
    # may outlive it, as nothing outlives a guarded channel (saf.shell.guarded).
    session.stop_all()
    with session.lock:
        left = list(session.running.values())
    for proc in left:
        try:
            proc.wait(KILL_AFTER + 1)
        except subprocess.TimeoutExpired:
            pass


def main():
    # type: () -> int
    if sys.version_info < MIN_PYTHON:
        sys.stderr.write("Python %s is too old for saf's command session\n"
                         % sys.version.split()[0])
        return 3
    serve(iter(sys.stdin.buffer.readline, b""), sys.stdout.buffer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
