"""Jumbo frames and net tuning without links: the parsers against recorded tool output
(tests/fixtures/jumbo/, README-jumbo.md says where each comes from), the commands saf would
run per OS, the armed revert run for real on this machine (with setsid and, as on macOS,
with perl), and `--check` on an inventory of macOS nodes whose tools answer from recordings.
"""

from __future__ import annotations

import json
import os
import plistlib
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from saf.errors import ConfigError
from saf.jumbo import dfping, revert
from saf.jumbo.changes import change, media_words
from saf.jumbo.facts import NodeNet, read
from saf.jumbo.iface import FactError, carrying, parse_hardware_ports, parse_ifconfig, parse_ip_addr
from saf.recipe.kinds.sysctl import launch_daemon, parse_sysctl
from saf.recipe.parse import parse_recipe
from saf.tomlpos import TomlPositions, loads
from tests.helpers.servers import ClientKeys, LoopThread, write_inventory

FIX = Path(__file__).parent / "fixtures" / "jumbo"
IP_J = (FIX / "ip-j-addr_netns-veth-eth0-mtu9000_recorded.json").read_text()
IFCONFIG_EN0 = (FIX / "ifconfig-en0_wired-1000baseT_dacoloma-cheatsheet.txt").read_text()
IFCONFIG_ALL = (FIX / "ifconfig-all_macbook-usb-ethernet-en8_bmidgley-citizen-scientist.txt"
                ).read_text()
PORTS_MBP14 = (FIX / "networksetup-listallhardwareports_MBP14-2021-M1Pro_usb-eth_REDACTED-"
               "TRUNC.txt").read_text()
PORTS_INTEL = (FIX / "networksetup-listallhardwareports_intel-MBP-2020_TRUNC.txt").read_text()


# -- interfaces ---------------------------------------------------------------------------
def test_ip_json_finds_the_interface_of_the_cluster_address():
    interfaces = parse_ip_addr(IP_J)
    found = carrying(interfaces, ["10.200.7.2"])
    iface = found.interface
    assert (iface.name, iface.mtu, iface.up, iface.kind) == ("eth0", 9000, True, "ether")
    with pytest.raises(FactError, match="loopback interface lo"):
        carrying(interfaces, ["127.0.0.1"])
    with pytest.raises(FactError, match=r"no interface holds the cluster address \(10.9.9.9\)"):
        carrying(interfaces, ["10.9.9.9", "not-an-address"])
    assert carrying(interfaces, [], named="eth0").address == "10.200.7.2"
    with pytest.raises(FactError, match="there is no interface en9"):
        carrying(interfaces, [], named="en9")


@pytest.mark.parametrize("bad", ["not json", "{}", '[{"ifname": "x", "mtu": "big"}]',
                                 '[{"mtu": 1500}]', '[{"ifname": "x", "mtu": 1500, '
                                 '"addr_info": [{"local": "999.1.1.1"}]}]'])
def test_ip_json_from_a_node_is_checked(bad):
    with pytest.raises(FactError):
        parse_ip_addr(bad)


def test_macos_ifconfig_and_hardware_ports():
    (en0,) = parse_ifconfig(IFCONFIG_EN0)
    assert (en0.name, en0.mtu, en0.up) == ("en0", 1500, True)
    assert en0.addresses == ("fe80::c09:d075:22a2:aff0", "10.11.8.1")
    assert (en0.media, en0.active_media) == ("autoselect", "1000baseT <full-duplex>")
    every = {i.name: i for i in parse_ifconfig(IFCONFIG_ALL)}
    assert every["lo0"].loopback
    assert every["lo0"].mtu == 16384
    assert every["en8"].active_media == "100baseTX <full-duplex>"
    assert every["bridge100"].addresses == ("192.168.64.1",)
    # The MBP14 capture is cut off mid-word ("VLAN Configu"): what came before still counts.
    assert parse_hardware_ports(PORTS_MBP14)["en8"] == "AX88179A"
    assert parse_hardware_ports(PORTS_INTEL) == {
        "en0": "Wi-Fi", "en5": "iPhone USB", "en3": "Bluetooth PAN", "en1": "Thunderbolt 1",
        "en2": "Thunderbolt 2", "bridge0": "Thunderbolt Bridge"}


def _facts(os_name: str, **parts: str) -> str:
    out = [f"@@os {os_name}"]
    for name, text in parts.items():
        out += [f"@@{name}", text]
    return "\n".join(out)


def test_macos_facts_name_the_network_service():
    net = read(_facts("macos", ifconfig=IFCONFIG_ALL, ports=PORTS_MBP14), [], interface="en8")
    assert (net.os, net.found.port, net.found.interface.name) == ("macos", "AX88179A", "en8")
    # The address the node's SSH server was reached on finds the interface too.
    net = read(_facts("macos", ifconfig=IFCONFIG_EN0, ports=PORTS_INTEL,
                      ssh="10.0.0.5 50000 10.11.8.1 22"), ["127.0.0.1"])
    assert (net.found.port, net.found.address) == ("Wi-Fi", "10.11.8.1")
    with pytest.raises(FactError, match="bridge100 is not a hardware port networksetup knows"):
        read(_facts("macos", ifconfig=IFCONFIG_ALL, ports=PORTS_MBP14), ["192.168.64.1"])
    with pytest.raises(FactError, match="unknown operating system 'plan9'"):
        read(_facts("plan9"), [])


def test_linux_facts_detect_the_network_manager():
    base = {"ip": IP_J}
    assert read(_facts("linux", **base, nm="running"), ["10.200.7.2"]).manager == \
        "networkmanager"
    assert read(_facts("linux", **base, nm="", netplan="50-cloud-init.yaml"),
                ["10.200.7.2"]).manager == "netplan"
    assert read(_facts("linux", **base, nm="", netplan=""), ["10.200.7.2"]).manager is None


# -- the commands -------------------------------------------------------------------------
def _linux(manager: str | None = None) -> NodeNet:
    return NodeNet("linux", carrying(parse_ip_addr(IP_J), ["10.200.7.2"]), manager)


def test_linux_change_restore_and_persistence():
    net = _linux()
    assert change(net, 9000) is None  # already there
    plain = change(net, 1500)
    assert plain is not None
    assert plain.apply == ["ip link set dev eth0 mtu 1500"]
    assert plain.restore == ["ip link set dev eth0 mtu 9000", "ip link set dev eth0 up"]
    assert plain.persist == []
    assert "no netplan or NetworkManager" in plain.persist_note
    nm = change(_linux("networkmanager"), 1500, nm_connection="Wired connection 1")
    assert nm is not None
    assert nm.persist == ["nmcli connection modify 'Wired connection 1' 802-3-ethernet.mtu 1500"]
    netplan = change(_linux("netplan"), 1500)
    assert netplan is not None
    assert netplan.persist == ["netplan set ethernets.eth0.mtu=1500"]
    off = change(_linux("netplan"), 1500, persist=False)
    assert off is not None
    assert off.persist == []
    assert "persist = false" in off.persist_note


def test_macos_change_uses_networksetup_with_the_service_name():
    net = read(_facts("macos", ifconfig=IFCONFIG_ALL, ports=PORTS_MBP14), [], interface="en8")
    done = change(net, 9000, media="10Gbase-T <full-duplex>")
    assert done is not None
    assert done.apply == ["networksetup -setMedia AX88179A 10Gbase-T full-duplex",
                          "networksetup -setMTU AX88179A 9000"]
    assert done.restore == ["networksetup -setMTU AX88179A 1500",
                            "networksetup -setMedia AX88179A autoselect"]
    assert change(net, 1500, media="autoselect") is None
    assert media_words("1000baseT <full-duplex,flow-control>") == [
        "1000baseT", "full-duplex", "flow-control"]


def test_df_ping_fills_one_frame_exactly():
    assert dfping.payload(9000, "10.0.0.1") == 8972
    assert dfping.payload(9000, "fd00::1") == 8952
    assert dfping.ping_command("linux", "10.0.0.1", 9000) == \
        "ping -M do -c 2 -i 0.2 -W 1 -w 2 -s 8972 10.0.0.1"
    assert dfping.ping_command("macos", "10.0.0.1", 9000) == \
        "ping -D -c 2 -i 0.2 -t 2 -s 8972 10.0.0.1"
    with pytest.raises(ValueError, match="IPv6 is not supported on macOS"):
        dfping.ping_command("macos", "fd00::1", 9000)
    parsed = dfping.parse_pings("saf-pings\nsaf-ping 0 10.0.0.2 rtt min/avg/max\n"
                                "saf-ping 1 10.0.0.3 2 packets transmitted, 0 received\n"
                                "saf-ping 0 10.6.6.6 not asked\n", ["10.0.0.2", "10.0.0.3",
                                                                    "10.0.0.4"])
    assert [parsed[a].ok for a in ("10.0.0.2", "10.0.0.3", "10.0.0.4")] == [True, False, False]
    assert parsed["10.0.0.4"].detail == "no answer from ping"


def test_sysctl_linux_values_compare_whatever_the_blanks():
    linux = parse_sysctl("net.core.rmem_max = 4194304\nnet.ipv4.tcp_rmem = 4096\t131072\t6291456")
    assert linux["net.ipv4.tcp_rmem"] == "4096 131072 6291456"


# -- the armed revert, for real -------------------------------------------------------------
def _sh(script: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, env=env,
                          timeout=30)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat")
    return not (state.exists() and state.read_text().split(") ")[-1].startswith("Z"))


@pytest.fixture(params=["setsid", "perl"])
def detach_env(request, tmp_path):
    """The timer detached by setsid(1) (Linux), or by perl's POSIX::setsid as on macOS,
    which has no setsid: a PATH with only the tools a Mac has."""
    if request.param == "setsid":
        return {**os.environ, "TMPDIR": str(tmp_path)}
    if not shutil.which("perl"):
        pytest.skip("perl is not installed")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sh", "sleep", "mv", "cat", "rm", "mkdir", "perl", "printf"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    return {"PATH": str(bin_dir), "TMPDIR": str(tmp_path)}


def test_the_timer_restores_unless_confirmed(tmp_path, detach_env):
    marker = tmp_path / "restored"
    armed = _sh(revert.arm(1, [f"echo old > {marker}"]), detach_env)
    folder = revert.armed_folder(armed.stdout)
    assert armed.returncode == 0, armed.stderr
    assert folder, armed.stderr
    timer = int(Path(folder, "pid").read_text())
    assert _sh(revert.status(folder)).stdout.strip() == revert.ARMED
    deadline = time.monotonic() + 10
    while not Path(folder, "reverted").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.read_text() == "old\n"
    assert _sh(revert.status(folder)).stdout.startswith(f"{revert.REVERTED} 0")
    assert not Path(folder).exists()  # status read it, then removed it
    assert _sh(revert.confirm(folder)).returncode == 3  # too late: it fired
    time.sleep(0.1)
    assert not _alive(timer)


def test_confirming_stops_the_timer_and_leaves_nothing(tmp_path, detach_env):
    marker = tmp_path / "restored"
    armed = _sh(revert.arm(30, [f"echo old > {marker}"]), detach_env)
    folder = revert.armed_folder(armed.stdout)
    assert folder
    timer = int(Path(folder, "pid").read_text())
    sleeper = int(Path(folder, "sleep").read_text())
    assert os.getpgid(timer) == timer
    assert os.getsid(timer) == timer
    done = _sh(revert.confirm(folder))
    assert done.stdout.strip() == revert.CONFIRMED
    time.sleep(0.2)
    assert not _alive(timer)
    assert not _alive(sleeper)
    assert not Path(folder).exists()
    assert not marker.exists()


def test_fire_now_reverts_at_once(tmp_path):
    marker = tmp_path / "restored"
    folder = revert.armed_folder(_sh(revert.arm(30, [f"echo old > {marker}"]),
                                     {**os.environ, "TMPDIR": str(tmp_path)}).stdout)
    assert folder
    started = time.monotonic()
    _sh(revert.fire_now(folder))
    while not Path(folder, "reverted").exists() and time.monotonic() - started < 5:
        time.sleep(0.02)
    assert marker.exists()
    assert time.monotonic() - started < 5
    _sh(revert.status(folder))


# -- recipes ------------------------------------------------------------------------------
def _recipe(text: str):
    return parse_recipe(loads(text), TomlPositions(text), Path("r.toml"))


@pytest.mark.parametrize(("step", "message"), [
    ('kind = "mtu"\ncheck = "true"', "'check' would leave some of them out"),
    ('kind = "mtu"\nserial = true', "'serial' would leave some of them out"),
    ('kind = "mtu"\nmtu = 100', "mtu must be"),
    ('kind = "mtu"\nmtu = "jumbo"', "mtu 'jumbo' is not a whole number"),
    ('kind = "mtu"\nconfirm_within = 1', "confirm_within must be"),
    ('kind = "mtu"\npersist = "maybe"', "persist 'maybe' is not true or false"),
    ('kind = "sysctl"', "'settings' must be a table"),
    ('kind = "sysctl"\nmacos = { "rm -rf" = "1" }', "'rm -rf' is not a sysctl key"),
])
def test_bad_steps_are_refused_with_their_line(step, message):
    with pytest.raises(ConfigError, match=message) as caught:
        _recipe(f'[[steps]]\nname = "x"\n{step}\n')
    assert "r.toml:" in str(caught.value)


# -- --check on macOS nodes answering from recordings ---------------------------------------
MAC_BIN = FIX / "macos-bin"


def _mac_node(root: Path, name: str, ifconfig: str, ports: str, reached_on: str) -> dict:
    folder = root / "facts" / name
    folder.mkdir(parents=True)
    (folder / "ifconfig.txt").write_text(ifconfig)
    (folder / "networksetup.txt").write_text(ports)
    shutil.copy(FIX / "sysctl-net_macos-defaults_COMPOSED.txt", folder / "sysctl.txt")
    # What a Mac's sshd would say about the connection: the address it was reached on.
    # Files a step reads from the node (a LaunchDaemon saf wrote) under $SAF_FACTS_ROOT.
    return {"PATH": f"{MAC_BIN}:{os.environ['PATH']}", "SAF_FAKE_MAC": str(folder),
            "SAF_FACTS_ROOT": str(folder),
            "SSH_CONNECTION": f"10.11.0.9 50000 {reached_on} 22"}


@pytest.fixture
def mac_inventory(tmp_path):
    from saf.demo.node_server import NodeServer

    keys = ClientKeys(tmp_path / "operator")
    loop = LoopThread()
    envs = {"studio-1": _mac_node(tmp_path, "studio-1", IFCONFIG_EN0, PORTS_INTEL, "10.11.8.1"),
            "studio-2": _mac_node(tmp_path, "studio-2", IFCONFIG_EN0, PORTS_MBP14, "10.11.8.1"),
            "book": _mac_node(tmp_path, "book", IFCONFIG_ALL, PORTS_MBP14, "192.168.64.1")}
    servers = []
    for name, env in envs.items():
        server = NodeServer(name, tmp_path / "homes" / name, authorized_keys=[keys.key], env=env)
        loop.call(server.start())
        keys.trust(server.port, server.host_key.export_public_key("openssh").decode().strip())
        servers.append(server)
    nodes = [{"name": s.name, "host": "127.0.0.1", "port": s.port, "os": "macos"}
             for s in servers]
    yield write_inventory(tmp_path / "saf.toml", keys, nodes)
    for server in servers:
        loop.call(server.stop())
    loop.close()


def _saf(inventory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    import sys
    return subprocess.run([sys.executable, "-m", "saf", *args], capture_output=True, text=True,
                          env={**os.environ, "SAF_INVENTORY": str(inventory)}, timeout=120)


def test_macos_check_shows_the_networksetup_and_sysctl_commands(mac_inventory):
    done = _saf(mac_inventory, "run", "jumbo-frames", "--check", "--on", "studio-1,studio-2",
                "--var", "media=10Gbase-T <full-duplex>")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert out.count("would run: networksetup -setMedia Wi-Fi 10Gbase-T full-duplex") == 2
    assert out.count("would run: networksetup -setMTU Wi-Fi 9000") == 2
    assert out.count("then: networksetup -setMTU Wi-Fi 1500; networksetup -setMedia Wi-Fi "
                     "autoselect") == 2
    assert out.count("would run: ping -D -c 2 -i 0.2 -t 2 -s 8972 10.11.8.1") == 2
    assert "MTU 1500 -> 9000 on Wi-Fi (en0)" in out

    # A node whose cluster address is on an interface networksetup does not list.
    wrong = _saf(mac_inventory, "run", "jumbo-frames", "--check")
    assert wrong.returncode == 1
    assert "bridge100 is not a hardware port networksetup knows" in wrong.stdout, wrong.stdout

    tuning = _saf(mac_inventory, "run", "net-tuning", "--check", "--on", "studio-1")
    assert tuning.returncode == 0, tuning.stdout + tuning.stderr
    for line in ("sysctl -w kern.ipc.maxsockbuf=16777216",
                 "sysctl -w net.inet.tcp.sendspace=4194304",
                 "sysctl -w net.inet.tcp.recvspace=4194304",
                 "sysctl -w net.inet.tcp.delayed_ack=0"):
        assert f"would run: {line}" in tuning.stdout
    assert "sysctl.d" not in tuning.stdout.split("(1 node)")[1]  # macOS keeps no sysctl.d
    # Kept across reboots by a LaunchDaemon of its own, which launchd runs at boot.
    plist_path = "/Library/LaunchDaemons/com.saf.sysctl.90-saf-net-tuning.plist"
    assert f"; write {plist_path}" in tuning.stdout
    _, plist = launch_daemon("/etc/sysctl.d/90-saf-net-tuning.conf", {
        "kern.ipc.maxsockbuf": "16777216", "net.inet.tcp.sendspace": "4194304",
        "net.inet.tcp.recvspace": "4194304", "net.inet.tcp.delayed_ack": "0"})
    daemon = plistlib.loads(plist.encode())
    assert daemon == {"Label": "com.saf.sysctl.90-saf-net-tuning", "RunAtLoad": True,
                      "ProgramArguments": ["/usr/sbin/sysctl", "-w",
                                           "kern.ipc.maxsockbuf=16777216",
                                           "net.inet.tcp.sendspace=4194304",
                                           "net.inet.tcp.recvspace=4194304",
                                           "net.inet.tcp.delayed_ack=0"]}
    as_json = _saf(mac_inventory, "run", "net-tuning", "--check", "--on", "studio-1", "--json")
    [step] = [e for e in map(json.loads, as_json.stdout.splitlines())
              if e["event"] == "node_step_finished"]
    root = '"${SAF_FACTS_ROOT:-}"'  # written where it is read (empty on a real Mac)
    assert step["would"][-1] == (f"printf '%s\\n' {shlex.quote(plist)} > {root}{plist_path}"
                                 f".saf-tmp && chmod 644 {root}{plist_path}.saf-tmp && "
                                 f"mv {root}{plist_path}.saf-tmp {root}{plist_path}")
    same = ["--var", "maxsockbuf=8388608", "--var", "sendspace=131072",
            "--var", "recvspace=131072", "--var", "delayed_ack=3"]

    def step_of(*extra: str) -> dict:
        done = _saf(mac_inventory, "run", "net-tuning", "--check", "--on", "studio-1", "--json",
                    *extra)
        [step] = [e for e in map(json.loads, done.stdout.splitlines())
                  if e["event"] == "node_step_finished"]
        return step

    same_values = step_of(*same)  # live already, but not kept yet
    assert same_values["message"] == f"would write {plist_path}"
    assert len(same_values["would"]) == 1
    assert same_values["would"][0].startswith("printf '%s\\n' ")
    # With the LaunchDaemon in place, saying these values: nothing to do.
    _, kept = launch_daemon("/etc/sysctl.d/90-saf-net-tuning.conf", {
        "kern.ipc.maxsockbuf": "8388608", "net.inet.tcp.sendspace": "131072",
        "net.inet.tcp.recvspace": "131072", "net.inet.tcp.delayed_ack": "3"})
    daemons = mac_inventory.parent / "facts" / "studio-1" / "Library" / "LaunchDaemons"
    daemons.mkdir(parents=True)
    (daemons / "com.saf.sysctl.90-saf-net-tuning.plist").write_text(kept + "\n")
    kept_run = step_of(*same)
    assert kept_run["status"] == "skipped", kept_run
    assert kept_run["message"].endswith(f", kept by {plist_path}")
    assert not kept_run["would"]


def test_stopped_before_the_timer_runs_leaves_no_folder(tmp_path):
    """Ctrl-C (saf's guard sends TERM to the command's group) while the revert is being armed:
    nothing changed yet, and nothing is left on the node either. The arm is slowed down here
    so the TERM lands before the timer starts."""
    slow = revert.arm(5, ["true"]).replace("if command -v setsid",
                                           "sleep 3; if command -v setsid", 1)
    proc = subprocess.Popen(["sh", "-c", slow], start_new_session=True,
                            env={**os.environ, "TMPDIR": str(tmp_path)})
    deadline = time.monotonic() + 5
    while not list(tmp_path.glob("saf-revert.*")) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert list(tmp_path.glob("saf-revert.*"))  # the folder was made...
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(5)
    assert list(tmp_path.glob("saf-revert.*")) == []  # ...and taken away again
