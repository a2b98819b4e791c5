"""The program local rsync runs as its "remote shell" (`rsync -e`): it bridges its own stdin
and stdout to a UNIX socket where saf is listening, and saf carries the bytes over its existing
SSH connection to `rsync --server` on the node. No second SSH login, no ssh binary needed.

rsync calls it as `<shim> SOCKET HOST rsync --server ...`. The first line sent on the socket is
the remote command as JSON (the words after HOST); saf joins them with spaces and hands them to
the node's shell, exactly as ssh would. This file uses only the standard library, so it also
runs as a plain script.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading

CHUNK = 1 << 16


def _upstream(sock: socket.socket) -> None:
    """stdin → socket; at the end of stdin, tell saf (half-close)."""
    try:
        while True:
            data = os.read(0, CHUNK)
            if not data:
                break
            sock.sendall(data)
    except OSError:
        pass
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print("usage: rsync_shim SOCKET HOST COMMAND...", file=sys.stderr)
        return 2
    path, command = argv[0], argv[2:]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as exc:
        print(f"saf rsync shim: cannot reach saf at {path}: {exc}", file=sys.stderr)
        return 255
    sock.sendall(json.dumps(command).encode() + b"\n")
    threading.Thread(target=_upstream, args=(sock,), daemon=True).start()
    try:
        while True:
            data = sock.recv(CHUNK)
            if not data:
                break
            view = memoryview(data)
            while view:
                view = view[os.write(1, view):]
    except OSError:
        return 255
    return 0


if __name__ == "__main__":
    sys.stdout.flush()
    # os._exit: the stdin thread may still be blocked reading; the stream is over.
    os._exit(main(sys.argv[1:]))
