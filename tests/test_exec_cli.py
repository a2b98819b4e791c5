"""`saf exec`, `saf nodes` and `saf trust` run as a user would, against real SSH servers."""

from __future__ import annotations

import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import tomllib

import psutil
import pytest
import tomli_w

from tests.helpers.procs import sleepers
from tests.helpers.servers import free_port


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_exec_streams_prefixed_output_and_a_summary(cluster):
    done = cluster.saf("exec", "echo hello from $(echo node); echo oops >&2; exit 3")
    assert done.returncode == 1
    for name in ("alpha", "beta", "gamma"):
        assert f"{name:<5} │ hello from node" in done.stdout
        assert f"{name:<5} │ oops" in done.stdout
    summary = done.stderr
    assert "NODE" in summary
    assert "STATUS" in summary
    assert summary.count("failed") == 3


def test_exec_json_and_selection(cluster):
    done = cluster.saf("exec", "uname -s", "--on", "workers", "--json")
    assert done.returncode == 0, done.stderr
    events = json_lines(done.stdout)
    outputs = {e["node"]: e["line"] for e in events if e["event"] == "output"}
    assert outputs == {"beta": "Linux", "gamma": "Linux"}
    summary = events[-1]
    assert summary["event"] == "summary"
    assert summary["ok"] is True
    assert [r["node"] for r in summary["results"]] == ["beta", "gamma"]
    assert all(r["exit_status"] == 0 for r in summary["results"])


def test_bad_selector_is_a_clear_error(cluster):
    done = cluster.saf("exec", "true", "--on", "tag:amd")
    assert done.returncode == 2
    assert "'tag:amd' matches no node (nodes: alpha, beta, gamma" in done.stderr
    assert "Traceback" not in done.stderr


def _with_extra_nodes(cluster, tmp_path, extra: list[dict]) -> str:
    data = tomllib.loads(cluster.inventory.read_text())
    data["nodes"].extend(extra)
    path = tmp_path / "saf.toml"
    path.write_text(tomli_w.dumps(data))
    return str(path)


def test_refused_and_silent_nodes_are_reported_within_the_timeout(cluster, tmp_path):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(5)  # accepts the TCP handshake, never says a word of SSH
    inventory = _with_extra_nodes(cluster, tmp_path, [
        {"name": "refuser", "host": "127.0.0.1", "port": free_port()},
        {"name": "mute", "host": "127.0.0.1", "port": silent.getsockname()[1],
         "connect_timeout": 2},
    ])
    started = time.monotonic()
    done = cluster.saf("exec", "echo fine", "--json", SAF_INVENTORY=inventory)
    elapsed = time.monotonic() - started
    silent.close()
    assert done.returncode == 1
    results = {r["node"]: r for r in json_lines(done.stdout)[-1]["results"]}
    assert {n: results[n]["status"] for n in ("alpha", "beta", "gamma")} == \
        dict.fromkeys(("alpha", "beta", "gamma"), "ok")
    assert results["refuser"]["status"] == "unreachable"
    assert results["refuser"]["reason"] == "refused"
    assert results["mute"]["reason"] == "timeout"
    assert "within 2 s" in results["mute"]["message"]
    assert elapsed < 30  # generous: the point is that nothing waits forever


def test_unknown_host_key_is_refused_then_trusted(cluster, tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text("")
    data = tomllib.loads(cluster.inventory.read_text())
    data["defaults"]["known_hosts"] = str(known)
    inventory = tmp_path / "saf.toml"
    inventory.write_text(tomli_w.dumps(data))
    env = {"SAF_INVENTORY": str(inventory)}

    done = cluster.saf("exec", "true", "--on", "alpha", **env)
    assert done.returncode == 1
    assert "host key is not known (fingerprint SHA256:" in done.stderr
    assert "saf trust alpha" in done.stderr

    # Without --yes and without a terminal, trust shows the fingerprint and records nothing.
    shown = cluster.saf("trust", "alpha", **env)
    assert shown.returncode == 1
    assert "SHA256:" in shown.stdout
    assert known.read_text() == ""

    trusted = cluster.saf("trust", "alpha", "--yes", **env)
    assert trusted.returncode == 0, trusted.stderr
    assert f"[127.0.0.1]:{cluster.ports['alpha']} ssh-ed25519 " in known.read_text()
    assert cluster.saf("exec", "true", "--on", "alpha", **env).returncode == 0
    again = cluster.saf("trust", "alpha", "--yes", **env)
    assert "already trusted" in again.stdout


def test_changed_host_key_is_refused(cluster, tmp_path):
    import asyncssh

    impostor = asyncssh.generate_private_key("ssh-ed25519").export_public_key("openssh")
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{cluster.ports['beta']} {impostor.decode().strip()}\n")
    data = tomllib.loads(cluster.inventory.read_text())
    data["defaults"]["known_hosts"] = str(known)
    inventory = tmp_path / "saf.toml"
    inventory.write_text(tomli_w.dumps(data))
    done = cluster.saf("exec", "true", "--on", "beta", "--json", SAF_INVENTORY=str(inventory))
    assert done.returncode == 1
    result = json_lines(done.stdout)[-1]["results"][0]
    assert result["reason"] == "hostkey"
    assert "host key has CHANGED (now SHA256:" in result["message"]


def test_ctrl_c_stops_the_remote_commands(cluster, sleep_tag, popen):
    tag = sleep_tag
    proc = popen([sys.executable, "-m", "saf", "exec", f"sleep {tag}"],
                 env=cluster.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while len(sleepers(tag)) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(sleepers(tag)) == 3, "the command did not start on all three nodes"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert "Traceback" not in err
    deadline = time.monotonic() + 5
    while sleepers(tag) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not sleepers(tag), "a remote process outlived Ctrl-C"


def test_nodes_reports_real_facts(cluster):
    done = cluster.saf("nodes", "--json")
    assert done.returncode == 0, done.stderr
    rows = {r["node"]: r for r in json_lines(done.stdout)}
    assert set(rows) == {"alpha", "beta", "gamma"}
    for row in rows.values():
        assert row["reachable"] is True
        assert row["os"] == "linux"
        assert row["arch"] == platform.machine()
        assert row["kernel"] == platform.release()
        assert row["cpus"] == os.cpu_count()
        assert row["memory"] == pytest.approx(psutil.virtual_memory().total, rel=0.01)
        assert row["python"] == platform.python_version()
        assert 0 < row["latency_ms"] < 5000
    table = cluster.saf("nodes")
    assert "alpha" in table.stdout
    assert platform.python_version() in table.stdout


def test_nodes_says_why_a_node_is_down(cluster, tmp_path):
    inventory = _with_extra_nodes(cluster, tmp_path, [
        {"name": "ghost", "host": "127.0.0.1", "port": free_port()}])
    done = cluster.saf("nodes", SAF_INVENTORY=inventory)
    assert done.returncode == 1
    assert "refused" in done.stdout
    assert "ghost: connection refused by" in done.stdout


def test_bad_inventory_is_refused_without_traceback(tmp_path, cluster):
    bad = tmp_path / "saf.toml"
    bad.write_text('[[nodes]]\nname = "a"\nhost = "h"\nport = 0\n')
    done = cluster.saf("nodes", SAF_INVENTORY=str(bad))
    assert done.returncode == 2
    assert f"{bad}:4: node 'a': port must be a whole number from 1 to 65535, not 0" \
        in done.stderr
    assert "Traceback" not in done.stderr


def test_a_key_the_node_does_not_accept_is_an_auth_failure(cluster, tmp_path):
    import asyncssh

    stranger = tmp_path / "stranger_key"
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(stranger)
    os.chmod(stranger, 0o600)
    inventory = _with_extra_nodes(cluster, tmp_path, [
        {"name": "locked", "host": "127.0.0.1", "port": cluster.ports["alpha"],
         "identity": str(stranger)}])
    done = cluster.saf("nodes", "--json", "--on", "locked,alpha", SAF_INVENTORY=inventory,
                       HOME=str(tmp_path), SSH_AUTH_SOCK="")  # no other key to fall back on
    rows = {r["node"]: r for r in json_lines(done.stdout)}
    assert done.returncode == 1
    assert rows["alpha"]["reachable"] is True
    assert rows["locked"]["reason"] == "auth"
    assert "saf keys push" in rows["locked"]["message"]


def test_files_the_inventory_names_are_named_when_unusable(cluster, tmp_path):
    """A missing identity, a known_hosts that is a folder, and a known_hosts named in
    saf.toml that does not exist yet: each message names the file (the last one as an unknown
    key, with `saf trust`), and a host-key refusal shows as hostkey, not unreachable."""
    data = tomllib.loads(cluster.inventory.read_text())
    cases = {
        "identity": ("identity", str(tmp_path / "no-such-key"),
                     f"identity file {tmp_path / 'no-such-key'} does not exist"),
        "folder": ("known_hosts", str(tmp_path),
                   f"known_hosts {tmp_path} is a directory, not a file"),
        "new": ("known_hosts", str(tmp_path / "lab_known_hosts"),
                f"run `saf trust alpha` to record it in {tmp_path / 'lab_known_hosts'}"),
    }
    for name, (key, value, words) in cases.items():
        changed = {**data, "defaults": {**data["defaults"], key: value}}
        inventory = tmp_path / f"{name}.toml"
        inventory.write_text(tomli_w.dumps(changed))
        done = cluster.saf("exec", "true", "--on", "alpha", "--json",
                           SAF_INVENTORY=str(inventory))
        assert done.returncode == 1
        [result] = json_lines(done.stdout)[-1]["results"]
        assert words in result["message"], result
        assert result["reason"] == ("hostkey" if name == "new" else "config")
        shown = cluster.saf("exec", "true", "--on", "alpha", SAF_INVENTORY=str(inventory))
        flowed = " ".join(shown.stderr.split())  # Rich wraps at 80 columns off a terminal
        assert f"alpha │ {result['reason']}: {result['message']}" in flowed
        assert "unreachable" not in shown.stderr
        assert not (tmp_path / "lab_known_hosts").exists()


async def test_a_command_too_long_for_ssh_is_refused_before_any_node(cluster):
    from saf.errors import UsageError
    from saf.exec import exec_on
    from saf.fleet import Fleet
    from saf.inventory import load_inventory

    inv = load_inventory(cluster.inventory)
    async with Fleet(inv) as fleet:
        with pytest.raises(UsageError, match=r"^the command is 195\.3K; a command line may be "
                                             r"at most 128K"):
            await exec_on(fleet, list(inv.nodes), "echo " + "x" * 199_995, lambda e: None)
        assert not any(fleet.connector(n.name).connected for n in inv.nodes)
