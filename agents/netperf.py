"""The agent's TCP throughput tester: a server and a client, started on command, stdlib only.

    python agent.pyz netperf info   --host HOST
    python agent.pyz netperf serve  --bind HOST [--timeout S]
    python agent.pyz netperf client --connect ADDR --port P --token T
                         [--tests 1:send,1:recv,4:send,4:recv] [--warmup S] [--duration S]

`info` prints one JSON line: the interface that carries HOST's address (name, MTU, link speed,
duplex, from the agent's NIC collector, with ethtool's figure where sysfs has none) and
whether iperf3 is installed. `serve` binds a port on HOST's address (the cluster address, never
every interface), prints {"listening": PORT, "address": ADDR, "token": T} and serves ONE client
(a control connection carrying any number of tests, one after the other), then exits; it also
exits when its stdin closes (saf went away), when no client came within --timeout seconds, and
on a connection without the token. `client` connects, measures the idle round-trip time (20
small messages back and forth), then runs each test: STREAMS parallel TCP connections that
send (client to server) or receive (server to client) for --warmup seconds, not counted, then
--duration seconds, counted by the receiving end. It prints one JSON line per test and
{"done": true}.

The receiving end measures and conducts: it tells the sender over the control connection when
the counted part starts ("mark") and ends ("stop", with what it counted); the sender answers
with its own figures (TCP_INFO per stream on Linux: retransmits, data segments sent and the
retransmits the receiver reported as duplicates (D-SACK), each during the counted part;
smoothed RTT, path MTU, MSS; its CPU seconds). Speed: the sender uses sendfile() from a memfd
of zeros (no copy into the kernel) and the Linux receiver reads with MSG_TRUNC (the kernel
drops the bytes instead of copying them out); both fall back to send/recv_into of 1 MiB
buffers elsewhere. Each stream is a thread: the work happens in system calls, which release
the GIL.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import IO, Any, Optional

from .context import Context

# A JSON object from the other end of the control connection (or one for it): its fields are
# whatever JSON the peer wrote, checked where read. Aliases are evaluated at import on the
# nodes' Python 3.9: Optional, not `|`.
Message = dict[str, Any]
# Linux's TCP_INFO figures by name (None where the kernel does not report one).
TcpInfo = dict[str, Optional[int]]

CHUNK = 1 << 20                  # bytes per send/recv call
HEADER = struct.Struct("!16sII")  # token, test number, stream number: a data connection's start
TCP_INFO = getattr(socket, "TCP_INFO", 11)
TCP_INFO_FORMAT = struct.Struct("8B24I")  # up to tcpi_total_retrans (104 bytes)
# Later fields, where the kernel has them (a shorter struct comes back from an older one):
# tcpi_data_segs_out (Linux 4.6) and tcpi_dsack_dups (5.0), at their offsets in struct tcp_info.
TCP_INFO_LATER = (("data_segs_out", 156), ("dsack_dups", 216))
TCP_INFO_SIZE = 224                       # up to tcpi_reord_seen
MAX_STREAMS = 128
PINGS = 20
ACCEPT_TIMEOUT = 10.0            # seconds for a test's streams to connect


# -- figures ---------------------------------------------------------------------------------
def tcp_info(sock: socket.socket) -> TcpInfo | None:
    """{retrans, rtt_us, pmtu, snd_mss, data_segs_out, dsack_dups} from Linux's TCP_INFO
    (the last two None where the kernel is older), or None where not reported."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        raw = sock.getsockopt(socket.IPPROTO_TCP, TCP_INFO, TCP_INFO_SIZE)
    except OSError:
        return None
    if len(raw) < TCP_INFO_FORMAT.size:
        return None
    f = TCP_INFO_FORMAT.unpack_from(raw)[8:]
    info: TcpInfo = {"snd_mss": f[2], "pmtu": f[13], "rtt_us": f[15], "rttvar_us": f[16],
            "retrans": f[23]}
    for name, offset in TCP_INFO_LATER:
        info[name] = struct.unpack_from("I", raw, offset)[0] if len(raw) >= offset + 4 else None
    return info


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def parse_ethtool(text: str) -> tuple[int | None, str | None]:
    """(speed in Mbit/s or None, duplex or None) from `ethtool IF` output."""
    speed: int | None = None
    duplex: str | None = None
    for line in text.splitlines():
        key, _, value = line.strip().partition(":")
        value = value.strip()
        if key == "Speed" and value.endswith("Mb/s"):
            try:
                speed = int(value[:-4])
            except ValueError:
                speed = None
        elif key == "Duplex" and value.lower() in ("full", "half"):
            duplex = value.lower()
    return speed, duplex


def link_info(host: str, machine: Context | None = None) -> dict[str, object]:
    """What `netperf info` prints: the cluster interface and the tools at hand."""
    from .collectors.nics import NicCollector
    from .context import Context
    from .main import cluster_addresses

    machine = machine or Context(cluster_addresses=cluster_addresses(host))
    nic: dict[str, object] | None = None
    collector = NicCollector(machine)
    reason = collector.start()
    if reason is None:
        nics = collector.collect()
        found = [n for n in nics if n.get("cluster")]
        if found:
            n = found[0]
            nic = {k: n.get(k) for k in ("name", "mtu", "speed_mbps", "duplex", "addresses",
                                         "rx_errors", "tx_errors", "rx_drops", "tx_drops")}
            nic["speed_source"] = "sysfs" if nic["speed_mbps"] else None
            ethtool = shutil.which("ethtool")
            if nic["speed_mbps"] is None and ethtool and machine.platform.startswith("linux"):
                try:
                    out = subprocess.run([ethtool, str(n["name"])], capture_output=True, text=True,
                                         timeout=5).stdout
                except (OSError, subprocess.SubprocessError):
                    out = ""
                speed, duplex = parse_ethtool(out)
                if speed:
                    nic.update(speed_mbps=speed, speed_source="ethtool",
                               duplex=nic["duplex"] or duplex)
    collector.close()
    return {"host": host, "nic": nic, "nic_reason": reason if nic is None and reason else
            (None if nic else "no interface carries the cluster address"),
            "iperf3": shutil.which("iperf3"), "os": sys.platform}


# -- the two roles ---------------------------------------------------------------------------
class Control:
    """JSON lines over the control connection."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.pending = b""

    def send(self, obj: Message) -> None:
        self.sock.sendall((json.dumps(obj) + "\n").encode())

    def recv(self, timeout: float | None = None) -> Message | None:
        """The next message, or None when the connection ended, `timeout` passed or the line
        was not a JSON object."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self.pending:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                    return None
            try:
                data = self.sock.recv(65536)
            except OSError:
                return None
            if not data:
                return None
            self.pending += data
            if len(self.pending) > 1 << 20:
                return None
        line, self.pending = self.pending.split(b"\n", 1)
        try:
            msg = json.loads(line)
        except ValueError:
            return None
        return msg if isinstance(msg, dict) else None


def _zeros_fd() -> int | None:
    """A file of CHUNK zero bytes for sendfile (a memfd on Linux), or None."""
    if not sys.platform.startswith("linux") or not hasattr(os, "memfd_create"):
        return None
    try:
        fd = os.memfd_create("saf-netperf")
        os.ftruncate(fd, CHUNK)
        return fd
    except OSError:
        return None


def _pump(sock: socket.socket, zero: int | None, buf: memoryview,
          stop: threading.Event) -> None:
    """Send on `sock` until `stop` is set: sendfile() from the zeros file `zero` where there
    is one, else `buf` again and again. A closed connection ends it."""
    fd = sock.fileno()
    try:
        if zero is not None:
            while not stop.is_set():
                offset = 0
                while offset < CHUNK and not stop.is_set():
                    offset += os.sendfile(fd, zero, offset, CHUNK - offset)
        else:
            while not stop.is_set():
                sock.send(buf)
    except OSError:
        pass


def _follow_receiver(socks: Sequence[socket.socket], control: Control,
                     ) -> tuple[list[TcpInfo | None], float, Message | None]:
    """Take the receiver's orders until it says stop (or goes away): (TCP_INFO per stream
    and CPU seconds at the last "mark", the "stop" message or None)."""
    base = [tcp_info(s) for s in socks]
    cpu0 = cpu_seconds()
    while True:
        msg = control.recv(timeout=3600)
        if msg is None:
            return base, cpu0, None
        if msg.get("mark"):
            base = [tcp_info(s) for s in socks]
            cpu0 = cpu_seconds()
        elif msg.get("stop"):
            return base, cpu0, msg


def _end_streams(socks: Sequence[socket.socket], threads: list[threading.Thread],
                 stop: threading.Event, zero: int | None) -> None:
    """Stop the senders, close their connections (the receiver sees the end) and the zeros
    file."""
    stop.set()
    for s in socks:
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
    for t in threads:
        t.join(10)
    for s in socks:
        s.close()
    if zero is not None:
        os.close(zero)


def _counted(base: list[TcpInfo | None], infos: list[TcpInfo | None]) -> list[TcpInfo | None]:
    """Each stream's TCP_INFO at the end, its counters made the counted part's (since
    `base`); None for a stream without TCP_INFO."""
    streams: list[TcpInfo | None] = []
    for before, after in zip(base, infos):
        if after is None:
            streams.append(None)
            continue
        item = dict(after)
        for name in ("retrans", "data_segs_out", "dsack_dups"):  # during the counted part
            then, now = (before or after).get(name), after.get(name)
            item[name] = None if now is None or then is None else now - then
        streams.append(item)
    return streams


def send_streams(socks: Sequence[socket.socket],
                 control: Control) -> tuple[Message | None, Message]:
    """The sending end: send on every stream until the receiver says stop; then answer with
    TCP_INFO per stream and CPU seconds. Returns the receiver's 'stop' message."""
    stop = threading.Event()
    zero = _zeros_fd()
    buf = memoryview(bytearray(CHUNK))
    threads = [threading.Thread(target=_pump, args=(s, zero, buf, stop), daemon=True)
               for s in socks]
    for t in threads:
        t.start()
    base, cpu0, final = _follow_receiver(socks, control)
    cpu = cpu_seconds() - cpu0
    infos = [tcp_info(s) for s in socks]
    _end_streams(socks, threads, stop, zero)
    report = {"sender": {"cpu_s": round(cpu, 4), "tcp_info": _counted(base, infos)}}
    if final is not None:
        try:
            control.send(report)
        except OSError:
            pass
    return final, report


def receive_streams(socks: Sequence[socket.socket], control: Control, warmup: float,
                    duration: float) -> tuple[Message, Message | None]:
    """The receiving end: count bytes per stream, mark the end of the warm-up, stop the
    sender after `duration` counted seconds. Returns (measured, sender's report)."""
    counts = [0] * len(socks)
    linux = sys.platform.startswith("linux")
    trunc = getattr(socket, "MSG_TRUNC", 0) if linux else 0

    def drain(i: int, sock: socket.socket) -> None:
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        try:
            while True:
                n = sock.recv_into(view, CHUNK, trunc)
                if not n:
                    return
                counts[i] += n
        except OSError:
            return

    threads = [threading.Thread(target=drain, args=(i, s), daemon=True)
               for i, s in enumerate(socks)]
    for t in threads:
        t.start()
    time.sleep(warmup)
    t1, b1, cpu1 = time.monotonic(), list(counts), cpu_seconds()
    control.send({"mark": True})
    time.sleep(duration)
    t2, b2, cpu2 = time.monotonic(), list(counts), cpu_seconds()
    seconds = t2 - t1
    per_stream = [(b - a) * 8 / seconds for a, b in zip(b1, b2)]
    measured: Message = {"bytes": sum(b2) - sum(b1), "seconds": round(seconds, 6),
                "bits_per_second": sum(per_stream),
                "streams_bps": [round(x, 1) for x in per_stream],
                "receiver_cpu_s": round(cpu2 - cpu1, 4)}
    control.send({"stop": True, "measured": measured})
    report = control.recv(timeout=30)
    for t in threads:
        t.join(10)
    for s in socks:
        s.close()
    return measured, report


def combine(streams: int, reverse: bool, measured: Message, sender: Message | None) -> Message:
    """One test's JSON record from the receiver's count and the sender's report."""
    out: Message = {"streams": streams, "direction": "recv" if reverse else "send"}
    out.update(measured)
    infos = [i for i in ((sender or {}).get("tcp_info") or []) if i]
    out["sender_cpu_s"] = (sender or {}).get("cpu_s")
    if infos:
        out["retransmits"] = sum(i["retrans"] for i in infos)
        out["rtt_us"] = round(statistics.mean(i["rtt_us"] for i in infos), 1)
        out["pmtu"] = min(i["pmtu"] for i in infos)
        out["snd_mss"] = min(i["snd_mss"] for i in infos)
        # The data segments sent, and the retransmits the receiver reported as duplicates
        # (D-SACK, RFC 2883: needless, e.g. a virtual link's reordering), where every stream's
        # kernel counts them.
        for key, name in (("segments", "data_segs_out"), ("spurious", "dsack_dups")):
            counts = [i.get(name) for i in infos]
            out[key] = None if None in counts else sum(counts)
    else:
        out.update(retransmits=None, rtt_us=None, pmtu=None, snd_mss=None, segments=None,
                   spurious=None)
    return out


# -- serve -----------------------------------------------------------------------------------
def _bind(host: str) -> socket.socket:
    """A listening socket on HOST's address (or, failing that, the address this SSH session
    reached; never the wildcard address)."""
    candidates: list[tuple[socket.AddressFamily, tuple[Any, ...]]] = []  # (family, sockaddr)
    try:
        for info in socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM):
            candidates.append((info[0], info[4]))
    except (OSError, UnicodeError):
        pass
    ssh = (os.environ.get("SSH_CONNECTION") or "").split()
    if len(ssh) == 4:
        family = socket.AF_INET6 if ":" in ssh[2] else socket.AF_INET
        candidates.append((family, (ssh[2], 0)))
    problems = []
    for family, addr in candidates:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.bind(addr[:1] + (0,) + tuple(addr[2:]))
            sock.listen(MAX_STREAMS + 8)
            return sock
        except OSError as exc:
            problems.append("%s: %s" % (addr[0], exc.strerror or exc))
            sock.close()
    raise OSError("cannot listen on %s (%s)" % (host, "; ".join(problems) or "no address"))


def _watch_stdin() -> None:
    """Exit when stdin closes: the server never outlives saf's channel."""
    def watch() -> None:
        try:
            while os.read(0, 65536):
                pass
        except OSError:
            pass
        os._exit(0)
    threading.Thread(target=watch, daemon=True).start()


def serve(host: str, timeout: float, out: IO[str] | None = None, token: str | None = None,
          watch_stdin: bool = True) -> int:
    out = out or sys.stdout
    token = token or os.urandom(8).hex()
    listener = _bind(host)
    port = listener.getsockname()[1]
    out.write(json.dumps({"listening": port, "address": listener.getsockname()[0],
                          "token": token}) + "\n")
    out.flush()
    if watch_stdin:
        _watch_stdin()
    key = token.encode()
    try:
        if not select.select([listener], [], [], timeout)[0]:
            out.write(json.dumps({"error": "no client within %g s" % timeout}) + "\n")
            return 1
        conn, _ = listener.accept()
        control = Control(conn)
        hello = control.recv(timeout=10)
        if not isinstance(hello, dict) or hello.get("token") != token:
            out.write(json.dumps({"error": "a connection without the token"}) + "\n")
            return 1
        control.send({"ok": True})
        served = 0
        while True:
            msg = control.recv(timeout=3600)
            if msg is None:
                break
            if "ping" in msg:
                control.send({"pong": msg["ping"]})
                continue
            test = msg.get("test")
            if not isinstance(test, dict):
                break
            n, reverse = int(test["streams"]), bool(test["reverse"])
            socks = _accept_streams(listener, key, served, n)
            if socks is None:
                control.send({"error": "the streams did not connect"})
                break
            control.send({"ready": True})
            if reverse:
                send_streams(socks, control)
            else:
                receive_streams(socks, control, float(test["warmup"]), float(test["duration"]))
            served += 1
        out.write(json.dumps({"served": served}) + "\n")
        out.flush()
        return 0
    finally:
        listener.close()


def _accept_streams(listener: socket.socket, key: bytes, test: int,
                    n: int) -> list[socket.socket] | None:
    socks: list[socket.socket] = []
    deadline = time.monotonic() + ACCEPT_TIMEOUT
    while len(socks) < n:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([listener], [], [], left)[0]:
            for s in socks:
                s.close()
            return None
        sock, _ = listener.accept()
        sock.settimeout(5)
        try:
            head = b""
            while len(head) < HEADER.size:
                part = sock.recv(HEADER.size - len(head))
                if not part:
                    break
                head += part
        except OSError:
            head = b""
        sock.settimeout(None)
        if len(head) != HEADER.size or HEADER.unpack(head)[:2] != (key.ljust(16)[:16], test):
            sock.close()  # not one of this test's streams
            continue
        socks.append(sock)
    return socks


# -- client ----------------------------------------------------------------------------------
def parse_tests(text: str) -> list[tuple[int, bool]]:
    tests = []
    for item in text.split(","):
        streams, _, direction = item.strip().partition(":")
        n = int(streams)
        if not 1 <= n <= MAX_STREAMS or direction not in ("send", "recv"):
            raise ValueError("a test is STREAMS:send or STREAMS:recv, streams 1-%d: %r"
                             % (MAX_STREAMS, item))
        tests.append((n, direction == "recv"))
    return tests


def client(address: str, port: int, token: str, tests: Sequence[tuple[int, bool]],
           warmup: float, duration: float, out: IO[str] | None = None) -> int:
    out = out or sys.stdout
    family = socket.AF_INET6 if ":" in address else socket.AF_INET

    def connect() -> socket.socket:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(10)
        sock.connect((address, port))
        sock.settimeout(None)
        return sock

    control = Control(connect())
    control.send({"token": token})
    if not (control.recv(timeout=10) or {}).get("ok"):
        raise OSError("the server refused the test")
    rtts: list[float] = []
    for i in range(PINGS):
        began = time.perf_counter()
        control.send({"ping": i})
        if control.recv(timeout=10) is None:
            raise OSError("the server stopped answering")
        rtts.append(time.perf_counter() - began)
    out.write(json.dumps({"rtt_ms": round(statistics.median(rtts) * 1000, 4),
                          "rtt_min_ms": round(min(rtts) * 1000, 4)}) + "\n")
    out.flush()
    key = token.encode().ljust(16)[:16]
    for number, (n, reverse) in enumerate(tests):
        control.send({"test": {"streams": n, "reverse": reverse, "warmup": warmup,
                               "duration": duration}})
        socks = []
        for i in range(n):
            sock = connect()
            sock.sendall(HEADER.pack(key, number, i))
            socks.append(sock)
        ready = control.recv(timeout=ACCEPT_TIMEOUT + 5)
        if not (ready or {}).get("ready"):
            raise OSError("the server did not take the streams: %s" % (ready,))
        if reverse:
            measured, report = receive_streams(socks, control, warmup, duration)
            sender = (report or {}).get("sender")
        else:
            final, report = send_streams(socks, control)
            if final is None:
                raise OSError("the server stopped during the test")
            measured, sender = final["measured"], report["sender"]
        out.write(json.dumps(combine(n, reverse, measured, sender)) + "\n")
        out.flush()
    control.sock.close()
    out.write(json.dumps({"done": True}) + "\n")
    out.flush()
    return 0


def main(argv: Sequence[str] | None = None) -> int:

    parser = argparse.ArgumentParser(prog="saf-agent netperf")
    sub = parser.add_subparsers(dest="what", required=True)
    info = sub.add_parser("info")
    info.add_argument("--host", required=True)
    srv = sub.add_parser("serve")
    srv.add_argument("--bind", required=True)
    srv.add_argument("--timeout", type=float, default=60.0)
    cli = sub.add_parser("client")
    cli.add_argument("--connect", required=True)
    cli.add_argument("--port", type=int, required=True)
    cli.add_argument("--token", required=True)
    cli.add_argument("--tests", default="1:send,1:recv")
    cli.add_argument("--warmup", type=float, default=1.0)
    cli.add_argument("--duration", type=float, default=5.0)
    args = parser.parse_args(argv)
    try:
        if args.what == "info":
            print(json.dumps(link_info(args.host)))
            return 0
        if args.what == "serve":
            return serve(args.bind, args.timeout)
        return client(args.connect, args.port, args.token, parse_tests(args.tests),
                      args.warmup, args.duration)
    except (OSError, ValueError) as exc:
        print(json.dumps({"error": "%s: %s" % (type(exc).__name__, exc)}))
        sys.stdout.flush()
        return 2
