"""`saf keys push` against real SSH servers (asyncssh's) that allow a password: the key is added
once, permissions are fixed, key login is proven, and the password never shows."""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import stat
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import asyncssh
import pytest

from saf.demo.node_server import NodeServer
from saf.errors import SafError
from saf.inventory.model import Node
from saf.keys import AUTHORIZE_SCRIPT, find_public_key, read_public_key
from tests.helpers.servers import ClientKeys, LoopThread, free_port, write_inventory

PASSWORD = "Pw-$(touch saf-pwned)-'\"-s3cret"  # shell-hostile, and easy to spot in output
ROOT = Path(__file__).parent.parent


@dataclass
class PasswordNodes:
    """Two password-only nodes (alpha, beta) plus one that refuses connections (down)."""

    root: Path
    keys: ClientKeys
    inventory: Path
    homes: dict[str, Path]

    def saf(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run the CLI as a user would, without a controlling terminal."""
        env = dict(os.environ, SAF_INVENTORY=str(self.inventory), PYTHONPATH=str(ROOT))
        return subprocess.run([sys.executable, "-m", "saf", *args], input=input or "",
                              env=env, capture_output=True, text=True, timeout=120,
                              cwd=self.root, start_new_session=True)

    def authorized(self, name: str) -> Path:
        return self.homes[name] / ".ssh" / "authorized_keys"


@pytest.fixture
def nodes(tmp_path: Path):
    keys = ClientKeys(tmp_path / "operator")
    loop = LoopThread()
    servers = []
    entries = []
    for name in ("alpha", "beta"):
        server = NodeServer(name, tmp_path / "homes" / name, password=PASSWORD,
                            authorized_keys=[])
        loop.call(server.start())
        servers.append(server)
        keys.trust(server.port, server.host_key.export_public_key("openssh").decode().strip())
        entries.append({"name": name, "host": "127.0.0.1", "port": server.port})
    entries.append({"name": "down", "host": "127.0.0.1", "port": free_port()})
    inventory = write_inventory(tmp_path / "saf.toml", keys, entries)
    yield PasswordNodes(tmp_path, keys, inventory, {s.name: s.home for s in servers})
    for server in servers:
        loop.call(server.stop())
    loop.close()


async def key_login(nodes: PasswordNodes, name: str) -> str:
    port = next(n["port"] for n in tomllib.loads(nodes.inventory.read_text())["nodes"]
                if n["name"] == name)
    async with asyncssh.connect("127.0.0.1", port, username=getpass.getuser(),
                                client_keys=[str(nodes.keys.identity)], agent_path=None,
                                password_auth=False, kbdint_auth=False,
                                known_hosts=str(nodes.keys.known_hosts), config=None) as conn:
        return (await conn.run("echo ok", check=True)).stdout.strip()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_push_twice_adds_the_key_once_and_proves_key_login(nodes: PasswordNodes) -> None:
    # A pre-existing authorized_keys with loose permissions and no final newline.
    ssh_dir = nodes.homes["beta"] / ".ssh"
    ssh_dir.mkdir(mode=0o755)
    nodes.authorized("beta").write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOtherKey x@y")
    os.chmod(ssh_dir, 0o755)
    os.chmod(nodes.authorized("beta"), 0o644)

    first = nodes.saf("keys", "push", "alpha,beta", "--password-stdin", input=PASSWORD + "\n")
    assert first.returncode == 0, first.stdout + first.stderr
    lines = first.stdout.splitlines()
    rows = {line.split()[0]: line for line in lines[:2]}  # in the order nodes finish
    for name in ("alpha", "beta"):
        assert rows[name].split()[1] == "added"
        assert "key login works" in rows[name]
    assert lines[-1] == "2 nodes: 2 added"

    key_line = nodes.keys.public_line()
    for name in ("alpha", "beta"):
        text = nodes.authorized(name).read_text()
        assert text.count(key_line) == 1
        assert mode(nodes.authorized(name)) == 0o600
        assert mode(nodes.authorized(name).parent) == 0o700
    # The other key kept its own line: a newline was added before ours.
    assert nodes.authorized("beta").read_text().splitlines() == [
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOtherKey x@y", key_line]

    # Key login works now with that key alone, checked here without saf.
    for name in ("alpha", "beta"):
        assert asyncio.run(key_login(nodes, name)) == "ok"

    second = nodes.saf("keys", "push", "alpha,beta", "--password-stdin", input=PASSWORD + "\n")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "2 nodes: 2 already present" in second.stdout
    for name in ("alpha", "beta"):
        assert nodes.authorized(name).read_text().count(key_line) == 1

    for result in (first, second):
        assert PASSWORD not in result.stdout + result.stderr
        assert "Traceback" not in result.stderr
    assert not list(nodes.root.rglob("saf-pwned"))  # the password never reached a shell
    for home in nodes.homes.values():
        for path in home.rglob("*"):
            if path.is_file():
                assert PASSWORD not in path.read_text(errors="replace")


def test_wrong_password_and_unreachable_node_are_reported_per_node(
        nodes: PasswordNodes) -> None:
    result = nodes.saf("keys", "push", "all", "--password-stdin", input="not-it\n")
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert "not-it" not in result.stdout + result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[:3]}
    assert "failed" in rows["alpha"]
    assert "password login failed" in rows["alpha"]
    assert "failed" in rows["beta"]
    assert "password login failed" in rows["beta"]
    assert "failed" in rows["down"]
    assert "connection refused" in rows["down"]
    assert result.stdout.splitlines()[-1] == "3 nodes: 3 failed"
    assert not nodes.authorized("alpha").exists()

    # --json gives one object per node, with the reason.
    result = nodes.saf("keys", "push", "all", "--password-stdin", "--json",
                       input=PASSWORD + "\n")
    assert result.returncode == 1
    events = {e["node"]: e for e in map(json.loads, result.stdout.splitlines())}
    assert events["alpha"]["outcome"] == "added"
    assert events["beta"]["outcome"] == "added"
    assert events["down"]["outcome"] == "failed"
    assert events["down"]["reason"] == "refused"
    assert PASSWORD not in result.stdout + result.stderr


def test_missing_key_and_empty_password_are_clear_errors(nodes: PasswordNodes) -> None:
    result = nodes.saf("keys", "push", "alpha", "--password-stdin",
                       "--key", str(nodes.root / "nope.pub"), input=PASSWORD + "\n")
    assert result.returncode == 1
    assert result.stderr.strip() == f"saf: {nodes.root / 'nope.pub'}: no such file"

    result = nodes.saf("keys", "push", "alpha", "--password-stdin", input="\n")
    assert result.returncode == 1
    assert "first line of stdin is empty" in result.stderr

    # No terminal and no --password-stdin: refused, rather than reading stdin with echo on.
    result = nodes.saf("keys", "push", "alpha")
    assert result.returncode == 1
    assert "no terminal to ask the password on; pass --password-stdin" in result.stderr

    result = nodes.saf("keys", "push", "nosuchnode", "--password-stdin", input="x\n")
    assert result.returncode == 2
    assert "alpha" in result.stderr


def test_find_public_key_defaults_and_errors(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    bare = Node(name="n1", host="h")
    with pytest.raises(SafError, match="ssh-keygen -t ed25519"):
        find_public_key(bare)
    keys = ClientKeys(tmp_path / ".ssh")  # writes id_ed25519 and id_ed25519.pub
    found = find_public_key(bare)
    assert found.path == tmp_path / ".ssh" / "id_ed25519.pub"
    assert found.private == tmp_path / ".ssh" / "id_ed25519"
    assert found.line == keys.public_line()

    # --key may name the private key; its .pub is used.
    assert find_public_key(bare, str(keys.identity)).path == found.path
    # The inventory's identity wins over the defaults, and needs its .pub.
    lonely = tmp_path / "lonely"
    lonely.write_text("x")
    with pytest.raises(SafError, match=r"ssh-keygen -y -f .*lonely"):
        find_public_key(Node(name="n1", host="h", identity=str(lonely)))
    with pytest.raises(SafError, match="is a private key"):
        read_public_key(keys.identity)
    (tmp_path / "junk.pub").write_text("not a key\n")
    with pytest.raises(SafError, match="not an OpenSSH public key"):
        read_public_key(tmp_path / "junk.pub")


KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIF0XyT1R7e6n2m8QmF3jbrqgP5H0d1P6rYVbA1c9F5dq me@laptop"


@pytest.mark.parametrize(("existing", "expect", "lines"), [
    (None, "added", [KEY]),
    ("", "added", [KEY]),
    ("ssh-rsa AAAAB3Nz other", "added", ["ssh-rsa AAAAB3Nz other", KEY]),
    (KEY.replace("me@laptop", "old comment") + "\n", "present",
     [KEY.replace("me@laptop", "old comment")]),
    ('from="10.0.0.0/8",no-pty ' + KEY + "\n", "present", ['from="10.0.0.0/8",no-pty ' + KEY]),
    # Same type, a different key whose data starts with ours: not a match.
    (KEY.split()[0] + " " + KEY.split()[1] + "X\n", "added",
     [KEY.split()[0] + " " + KEY.split()[1] + "X", KEY]),
])
def test_authorize_script(tmp_path: Path, existing: str | None, expect: str,
                          lines: list[str]) -> None:
    """The script that runs on the node, run here under /bin/sh with HOME in a temp folder."""
    if existing is not None:
        (tmp_path / ".ssh").mkdir()
        (tmp_path / ".ssh" / "authorized_keys").write_text(existing)
    result = subprocess.run(["/bin/sh", "-c", AUTHORIZE_SCRIPT], input=KEY + "\n",
                            env={"HOME": str(tmp_path), "PATH": os.environ["PATH"]},
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expect
    path = tmp_path / ".ssh" / "authorized_keys"
    assert path.read_text().splitlines() == lines
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700


def test_the_ssh_config_identity_file_is_the_key_to_push(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """`ssh lab1` logs in with the config's IdentityFile; `saf keys push lab1` pushes that
    key (from ~/.ssh/config, or the inventory's ssh_config), not 'no key found'."""
    monkeypatch.setenv("HOME", str(tmp_path))
    lab = ClientKeys(tmp_path / "keys" / "lab")
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "config").write_text(
        f"Host lab1\n  HostName 127.0.0.1\n  IdentityFile {lab.identity}\n")
    found = find_public_key(Node(name="lab1", host="lab1"))
    assert found.path == Path(f"{lab.identity}.pub")
    assert found.private == lab.identity
    # The defaults come after the config's key, and a config with no .pub falls through.
    ClientKeys(tmp_path / ".ssh")
    assert find_public_key(Node(name="lab1", host="lab1")).path == found.path
    elsewhere = tmp_path / "other_config"
    elsewhere.write_text("Host lab1\n  IdentityFile ~/nowhere/key\n")
    assert find_public_key(Node(name="lab1", host="lab1", ssh_config=str(elsewhere))).path \
        == tmp_path / ".ssh" / "id_ed25519.pub"
