"""`saf serve --ssh` end to end: a real `saf serve` on the demo cluster (real SSH servers, real
agents), reached by asyncssh clients with a pty (what they see is read from a VT100 screen, pyte)
and by OpenSSH's own client under tmux. Log in with a key, see the dashboard, press a key,
resize, leave: nothing left running. Everyone else is refused, and the server goes on."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
import uuid

import asyncssh
import pytest

from saf.demo.cluster import DemoCluster
from tests.helpers.serve import Keys, Served, TermClient, agents, dashboard_up, gone, wait_gone


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    with DemoCluster(homes=tmp_path_factory.mktemp("homes")) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return Keys.make(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def served(demo, keys, tmp_path_factory: pytest.TempPathFactory):
    server = Served(demo.inventory_path, keys, tmp_path_factory.mktemp("state"))
    try:
        yield server
    finally:
        server.stop()


def _signals_screen(text: str) -> bool:
    return "Symbols" in text and "Bad frames" in text


async def test_a_client_logs_in_sees_the_dashboard_presses_resizes_and_leaves_nothing(served):
    """The whole life of a session, as a tablet's SSH client lives it."""
    client = await TermClient.open(served, cols=100, rows=30)
    pid = served.cockpit_pid(client.local_port)
    assert pid in [p.pid for p in served.cockpits()]
    assert await client.wait_for(dashboard_up), client.text()
    assert "NET IN" in client.text()  # 100 columns: the wide columns are there
    client.press("5")
    assert await client.wait_for(_signals_screen, 30), client.text()
    client.press("1")
    assert await client.wait_for(lambda t: dashboard_up(t) and not _signals_screen(t), 30)
    client.resize(60, 40)
    # The new layout: 60 columns leave the network columns out; 40 rows put the footer
    # (its keys) on the 40th line.
    assert await client.wait_for(lambda t: dashboard_up(t) and "NET IN" not in t
                                 and "Quit" in client.screen.display[39], 30), client.text()
    assert all(len(line) <= 60 for line in client.text().splitlines())
    start = len(served.log)
    await client.close()
    assert await gone([pid]) == []
    served.wait_log(r"logout: tablet@127\.0\.0\.1:%d" % client.local_port, 15, start)
    assert pid not in [p.pid for p in served.cockpits()]


async def test_the_clients_term_is_honoured(served):
    """TERM from the pty request reaches the cockpit: a 256-colour terminal gets 256-colour
    escapes, a vt100 gets none of them."""
    rich = await TermClient.open(served, cols=80, rows=24, term="xterm-256color")
    plain = await TermClient.open(served, cols=80, rows=24, term="vt100")
    seen = {}
    for name, client in (("rich", rich), ("plain", plain)):
        raw = bytearray()
        original = client.stream.feed

        def feed(data: bytes, raw: bytearray = raw, original=original) -> None:
            raw.extend(data)
            original(data)
        client.stream.feed = feed  # type: ignore[method-assign]
        assert await client.wait_for(dashboard_up), client.text()
        await asyncio.sleep(1.5)
        seen[name] = bytes(raw)
    assert re.search(rb"\x1b\[(?:[0-9;]*;)?38;5;\d+", seen["rich"])
    assert not re.search(rb"38;[25];", seen["plain"])
    for client in (rich, plain):
        await client.close()


@pytest.mark.skipif(shutil.which("tmux") is None or shutil.which("ssh") is None,
                    reason="needs tmux and OpenSSH's ssh")
def test_openssh_client_under_tmux(served, keys):
    """`ssh -tt -p PORT -i KEY localhost`, as a person types it, pinned to the host key."""
    session = f"saf-serve-{uuid.uuid4().hex[:8]}"
    command = (f"ssh -tt -p {served.port} -i {keys.folder / 'good'} -o IdentitiesOnly=yes "
               f"-o UserKnownHostsFile={served.known_hosts} -o StrictHostKeyChecking=yes "
               "-o PasswordAuthentication=no -F /dev/null localhost")

    def screen() -> str:
        return subprocess.run(["tmux", "capture-pane", "-p", "-t", session],
                              capture_output=True, text=True).stdout

    def wait(predicate, seconds: float = 60) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if predicate(screen()):
                return True
            time.sleep(0.2)
        return bool(predicate(screen()))

    start = len(served.log)
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "100", "-y", "30",
                    command], check=True, env={"PATH": "/usr/bin:/bin", "TERM": "xterm"})
    try:
        assert wait(dashboard_up), screen()
        port = int(served.wait_log(r"login: \w+@127\.0\.0\.1:(\d+)", 10, start).group(1))
        pid = served.cockpit_pid(port)
        subprocess.run(["tmux", "send-keys", "-t", session, "5"], check=True)
        assert wait(_signals_screen, 30), screen()
        subprocess.run(["tmux", "send-keys", "-t", session, "1"], check=True)
        subprocess.run(["tmux", "resize-window", "-t", session, "-x", "60", "-y", "40"],
                       check=True)
        assert wait(lambda t: dashboard_up(t) and "NET IN" not in t
                    and len(t.splitlines()) >= 39, 30), screen()
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    assert wait_gone([pid]) == []
    served.wait_log(r"logout: \w+@127\.0\.0\.1:%d" % port, 15, start)


async def _connect(served, **options):
    return await asyncssh.connect(
        "127.0.0.1", served.port, username="intruder",
        known_hosts=asyncssh.import_known_hosts(served.known_hosts_line), agent_path=None,
        connect_timeout=20, **options)


async def test_everyone_else_is_refused_and_a_good_client_is_served_after(served, keys):
    start = len(served.log)
    with pytest.raises(asyncssh.PermissionDenied):
        await _connect(served, client_keys=[keys.stranger], password=None, kbdint_auth=False)
    served.wait_log(r"refused key %s" % re.escape(keys.stranger.get_fingerprint()), 10, start)
    with pytest.raises(asyncssh.PermissionDenied):
        await _connect(served, client_keys=None, password="hunter2")
    with pytest.raises(asyncssh.PermissionDenied):
        await _connect(served, client_keys=None, password=None, kbdint_auth=True)
    assert not any("hunter2" in line for line in served.log)

    async with await _connect(served, client_keys=[keys.good]) as conn:
        done = await conn.run("uptime", term_type="xterm")
        assert done.exit_status == 1
        assert b"not a shell" in done.stderr if isinstance(done.stderr, bytes) \
            else "not a shell" in done.stderr
        done = await conn.run()  # a session with no terminal
        assert done.exit_status == 1
        assert "needs a terminal" in str(done.stderr)
        with pytest.raises((asyncssh.Error, OSError)):
            async with conn.start_sftp_client():
                pass
        with pytest.raises(asyncssh.ChannelOpenError):
            await conn.open_connection("127.0.0.1", served.port)
        with pytest.raises(asyncssh.ChannelListenError):
            await conn.forward_remote_port("", 0, "127.0.0.1", served.port)
    served.wait_log(r"refused a port forward to 127\.0\.0\.1", 10, start)
    served.wait_log(r"refused a remote port forward", 10, start)

    client = await TermClient.open(served, cols=80, rows=24)
    assert await client.wait_for(dashboard_up), client.text()
    await client.close()
    assert served.proc.poll() is None


async def test_a_readonly_key_gets_a_readonly_cockpit(served, keys):
    client = await TermClient.open(served, keys.readonly, cols=120, rows=40)
    assert await client.wait_for(lambda t: dashboard_up(t) and "read-only" in t
                                 and "SSH key is marked read-only" in t), client.text()
    start = len(served.log)
    await client.close()
    served.wait_log(r"logout: .*read-only", 15, start)


async def test_three_clients_one_drops_the_others_carry_on_one_agent_per_node(demo, served):
    sizes = [(120, 40), (80, 24), (60, 40)]
    clients = [await TermClient.open(served, cols=c, rows=r) for c, r in sizes]
    try:
        for client in clients:
            assert await client.wait_for(dashboard_up), client.text()
        pids = [served.cockpit_pid(c.local_port) for c in clients]
        assert len(set(pids)) == 3
        # One per node, however many watch: this module's demo cluster's own agents.
        assert len(agents(demo.homes)) == 3, agents(demo.homes)
        await clients[1].drop()  # Wi-Fi lost: no goodbye
        assert await gone([pids[1]], 20) == [], "\n".join(served.log)
        # The others still get live frames: the status line's clock moves on.
        for client in (clients[0], clients[2]):
            before = client.received
            assert await client.wait_for(lambda _t, c=client, b=before: c.received > b + 100,
                                         10)
            assert dashboard_up(client.text())
        assert len(agents(demo.homes)) == 3, agents(demo.homes)
        assert sorted(p.pid for p in served.cockpits()) == sorted([pids[0], pids[2]])
    finally:
        for client in clients:
            if not client.ended.is_set():
                await client.close()
    assert await gone([pids[0], pids[2]]) == []


async def test_ctrl_c_on_saf_serve_ends_every_session(demo, keys, tmp_path):
    server = Served(demo.inventory_path, keys, tmp_path / "state")
    try:
        clients = [await TermClient.open(server, cols=80, rows=24) for _ in range(2)]
        for client in clients:
            assert await client.wait_for(dashboard_up), client.text()
        pids = [server.cockpit_pid(c.local_port) for c in clients]
        assert server.stop() == 0
        for client in clients:
            await asyncio.wait_for(client.ended.wait(), 15)
            assert client.process.exit_status is not None
        assert await gone(pids, 5) == []
        assert "stopping: ending every session" in "\n".join(server.log)
        assert not (tmp_path / "state" / "serve" / f"hub-{server.proc.pid}.sock").exists()
    finally:
        server.stop()


async def test_the_limits_turn_away_the_extra_sessions_and_logins(demo, keys, tmp_path):
    server = Served(demo.inventory_path, keys, tmp_path / "state", "--max-sessions", "1",
                    "--max-unauthenticated", "1")
    try:
        first = await TermClient.open(server, cols=80, rows=24)
        assert await first.wait_for(dashboard_up), first.text()
        first_pid = server.cockpit_pid(first.local_port)
        second = await TermClient.open(server, cols=80, rows=24)
        await asyncio.wait_for(second.ended.wait(), 15)
        assert second.process.exit_status == 1
        server.wait_log("--max-sessions", 10)
        await second.close()
        # One connection sitting at the login (it never says a word) fills the other limit.
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        await reader.readline()  # the server's version line: it has counted us
        with pytest.raises((asyncssh.DisconnectError, ConnectionError)):
            await TermClient.open(server, cols=80, rows=24)
        writer.close()
        await asyncio.sleep(0.5)
        await first.close()
        assert await gone([first_pid]) == []
        await asyncio.sleep(0.5)  # the session's end is logged after its cockpit's
        # Once the silent connection is gone (the server notices it in its own time), a
        # client logs in again.
        deadline = time.monotonic() + 15
        while True:
            try:
                third = await TermClient.open(server, cols=80, rows=24)
                break
            except (asyncssh.DisconnectError, ConnectionError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
        assert await third.wait_for(dashboard_up), third.text()
        await third.close()
    finally:
        server.stop()


async def test_a_burst_of_window_changes_resizes_the_pty_once():
    """A tablet turning sends several sizes at once: the pty (and so the cockpit, by SIGWINCH)
    gets the last one, once, after the burst."""
    import fcntl
    import os
    import pty
    import struct
    import termios

    from saf.serve.ssh_face import _Pump

    master, slave = pty.openpty()
    try:
        pump = _Pump(None, master, 0.1)  # type: ignore[arg-type] # resizing needs no channel

        def size() -> tuple[int, int]:
            rows, cols, _, _ = struct.unpack(
                "HHHH", fcntl.ioctl(slave, termios.TIOCGWINSZ, b"\0" * 8))
            return cols, rows
        before = size()
        for cols, rows in ((100, 30), (30, 100), (120, 40), (60, 40)):
            pump._resize_later(cols, rows, 0, 0)
            await asyncio.sleep(0.02)
        assert size() == before
        await asyncio.sleep(0.3)
        assert size() == (60, 40)
        assert pump.resizes == 1
    finally:
        os.close(master)
        os.close(slave)


async def test_a_tap_reaches_the_cockpit(served):
    """Mouse reports (what a tablet's client sends for a tap) pass through the pty: a tap on
    the footer's Help opens the help."""
    client = await TermClient.open(served, cols=100, rows=30)
    try:
        assert await client.wait_for(dashboard_up), client.text()
        assert await client.wait_for(lambda t: "Help" in client.screen.display[-1], 30), \
            client.text()
        column = client.screen.display[-1].index("Help") + 1
        row = len(client.screen.display)
        client.press(f"\x1b[<0;{column};{row}M\x1b[<0;{column};{row}m")
        assert await client.wait_for(lambda t: "Help · " in t, 30), client.text()
    finally:
        await client.close()


def test_the_host_key_is_made_once_and_kept_private(tmp_path):
    from saf.errors import SafError
    from saf.serve.authorized import ensure_host_key

    path = tmp_path / "serve" / "host_key"
    key = ensure_host_key(path)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert oct(path.parent.stat().st_mode & 0o777) == "0o700"
    assert ensure_host_key(path).get_fingerprint() == key.get_fingerprint()
    public = path.with_name("host_key.pub")
    public.unlink()
    ensure_host_key(path)
    assert asyncssh.import_public_key(public.read_bytes()).get_fingerprint() == \
        key.get_fingerprint()
    path.chmod(0o644)
    with pytest.raises(SafError, match=r"host_key: the host key is readable by others"):
        ensure_host_key(path)


def test_the_served_host_key_is_the_one_in_the_state_folder(served):
    key = served.state / "serve" / "ssh_host_ed25519_key"
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    fingerprint = asyncssh.read_private_key(str(key)).get_fingerprint()
    assert f"host key {fingerprint}" in "\n".join(served.log)


def test_mistakes_on_the_command_line_are_one_clear_line(tmp_path):
    import os
    import sys

    inventory = tmp_path / "saf.toml"
    inventory.write_text('[cluster]\nname = "x"\n[[nodes]]\nname = "a"\nhost = "127.0.0.1"\n')
    env = dict(os.environ, SAF_STATE_DIR=str(tmp_path / "state"), SAF_INVENTORY=str(inventory))

    def saf(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "saf", "serve", *args], env=env,
                              capture_output=True, text=True, timeout=60)
    done = saf("--ssh", "127.0.0.1:0", "--authorized-keys", str(tmp_path / "nope"))
    assert done.returncode != 0
    assert "nope: no such authorized-keys file" in done.stderr
    assert "Traceback" not in done.stderr
    (tmp_path / "empty").write_text("# nobody\n")
    done = saf("--ssh", "127.0.0.1:0", "--authorized-keys", str(tmp_path / "empty"))
    assert "no valid public key in it" in done.stderr
    assert "Traceback" not in done.stderr
    done = saf("--ssh", "localhost")
    assert "--ssh 'localhost': give HOST:PORT" in done.stderr
    assert "Traceback" not in done.stderr


def test_binding_beyond_loopback_warns(caplog):
    from saf.serve.faces import parse_bind, warn_if_beyond_loopback

    with caplog.at_level("WARNING"):
        warn_if_beyond_loopback(parse_bind("127.0.0.1:8022", "--ssh"), "--ssh")
        warn_if_beyond_loopback(parse_bind("[::1]:8022", "--ssh"), "--ssh")
        assert caplog.records == []
        warn_if_beyond_loopback(parse_bind("0.0.0.0:8022", "--ssh"), "--ssh")
    assert "beyond loopback" in caplog.text


async def test_a_session_and_its_logout_print_no_library_warning(served):
    """A new cryptography made asyncssh print ten DSA deprecation lines in every cockpit,
    seen by the client when it quit (tests/test_library_warnings.py has the rest)."""
    start = len(served.log)
    client = await TermClient.open(served, cols=100, rows=30)
    assert await client.wait_for(dashboard_up), client.text()
    pid = served.cockpit_pid(client.local_port)
    client.press("q")
    await asyncio.wait_for(client.ended.wait(), 20)
    assert await gone([pid]) == []
    assert b"Warning" not in client.raw
    assert [line for line in served.log[start:] if "Warning" in line] == []


async def test_saf_serve_run_from_a_folder_holding_a_saf_package_runs_the_installed_saf(
        demo, keys, tmp_path):
    """From inside a clone of the repository every cockpit died (No module named
    'saf.agents'): the hub started them as `python -m saf`, and -m put the working folder's
    saf/ first. Here that folder's saf/ is a decoy that says so and exits."""
    decoy = tmp_path / "clone"
    (decoy / "saf").mkdir(parents=True)
    (decoy / "saf" / "__init__.py").write_text("")
    (decoy / "saf" / "__main__.py").write_text(
        "import sys\nprint('the decoy saf ran', file=sys.stderr)\nsys.exit(3)\n")
    server = Served(demo.inventory_path, keys, tmp_path / "state", cwd=decoy)
    try:
        client = await TermClient.open(server, cols=100, rows=30)
        assert await client.wait_for(dashboard_up), client.text() + "\n".join(server.log)
        assert b"the decoy saf ran" not in client.raw
        await client.close()
    finally:
        server.stop()


async def test_keys_typed_in_one_burst_all_reach_the_filter_and_the_palette(served):
    """Over a slow tablet link many keys arrive in one packet: none may be lost, in the
    dashboard's filter or in the command palette (both are Textual Inputs)."""
    client = await TermClient.open(served, cols=120, rows=40)
    try:
        assert await client.wait_for(dashboard_up), client.text()
        client.press("/")
        assert await client.wait_for(lambda t: "filter nodes" in t, 10), client.text()
        burst = "gammaxyzzy0123456789qwertyuiop"
        client.press(burst)  # one write: one SSH packet, one read by the cockpit
        assert await client.wait_for(lambda t: burst in t, 10), client.text()
        client.press("\x1b")  # Esc clears the filter
        assert await client.wait_for(lambda t: burst not in t and dashboard_up(t), 10)
        client.press("\x10")  # Ctrl-P: the command palette
        assert await client.wait_for(lambda t: "Search for commands" in t, 10), client.text()
        burst = "openxnodexbetaxqwertyuiop"
        client.press(burst)
        assert await client.wait_for(lambda t: burst in t, 10), client.text()
    finally:
        await client.close()
