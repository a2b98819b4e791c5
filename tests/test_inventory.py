"""The inventory: valid files load with defaults applied; every mistake names file and line."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from saf.connect import hostkeys
from saf.errors import InventoryError
from saf.inventory import find_inventory, load_inventory
from saf.inventory.address import Address, AddressError, parse_address, parse_jump
from saf.inventory.model import Node

GOOD = """\
[cluster]
name = "saf-lab"

[defaults]
user = "ops"
python = "~/saf-venv/bin/python"
identity = "~/.ssh/id_ed25519"

[[nodes]]
name = "alpha"
host = "192.168.1.172"
roles = ["head"]
tags = ["mac", "m3-ultra"]

[[nodes]]
name = "beta"
host = "beta"
port = 22
roles = ["worker"]
vars = { models_dir = "/Volumes/ai-models" }

[[nodes]]
name = "local"
host = "localhost"
python = "/usr/bin/python3"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "saf.toml"
    path.write_text(textwrap.dedent(text))
    return path


def test_issue_example_loads_with_defaults(tmp_path):
    inv = load_inventory(write(tmp_path, GOOD))
    assert inv.cluster.name == "saf-lab"
    assert inv.names == ["alpha", "beta", "local"]
    alpha, beta, local = inv.nodes
    assert alpha.user == "ops"
    assert alpha.python == "~/saf-venv/bin/python"
    assert alpha.roles == ("head",)
    assert alpha.tags == ("mac", "m3-ultra")
    assert beta.port == 22
    assert beta.vars == {"models_dir": "/Volumes/ai-models"}
    assert inv.head is alpha
    assert local.connection == "local"
    assert local.python == "/usr/bin/python3"
    assert alpha.connection == "ssh"
    assert alpha.line == 9


@pytest.mark.parametrize(("text", "line", "words"), [
    ('[[nodes]]\nname = "a"\nhost = "h"\ncolour = "red"\n', 4, "unknown key 'colour'"),
    ('[[nodes]]\nname = "a"\nhost = "h"\n\n[[nodes]]\nname = "a"\nhost = "i"\n', 6,
     "duplicate node name 'a' (first defined on line 1)"),
    ('[[nodes]]\nname = "a"\nport = 22\n', 1, "node 'a' has no host"),
    ('[[nodes]]\nname = "a"\nhost = "h"\nport = 70000\n', 4,
     "node 'a': port must be a whole number from 1 to 65535, not 70000"),
    ('[[nodes]]\nname = "a"\nhost = "h"\nport = "22"\n', 4,
     "port must be a whole number from 1 to 65535, not '22'"),
    ('[[nodes]]\nname = "a"\nhost = "h\n', 3, "TOML syntax error"),
    ('[defaults]\nuser = "x"\nshell = "zsh"\n[[nodes]]\nname = "a"\nhost = "h"\n', 3,
     "unknown key 'shell' in [defaults]"),
    ('[[nodes]]\nname = "a"\nhost = "h"\nroles = ["boss"]\n', 4,
     "node 'a': roles[0] must be one of control, head, worker, not 'boss'"),
    ('[[nodes]]\nhost = "h"\n', 1, "has no name"),
    ('[[nodes]]\nname = "a b"\nhost = "h"\n', 2, "may hold only letters"),
    ('[cluster]\nname = "x"\n', None, "has no [[nodes]]"),
    ('[[nodes]]\nname = "a"\nhost = "h"\nroles = ["head"]\n[[nodes]]\nname = "b"\n'
     'host = "i"\nroles = ["head"]\n', 5, "more than one head"),
    ('[[nodes]]\nname = "a"\nhost = "h"\nos = "windows"\n', 4, "os must be one of"),
    # TOML reads nan and inf as numbers; NaN compares false with everything.
    ('[defaults]\nconnect_timeout = nan\n[[nodes]]\nname = "a"\nhost = "h"\n', 2,
     "defaults.connect_timeout must be a number from 0.1 to 3600, not nan"),
    ('[[nodes]]\nname = "a"\nhost = "h"\nconnect_timeout = inf\n', 4, "not inf"),
    ('[[nodes]]\nname = "a"\nhost = "h"\nconnect_timeout = -inf\n', 4, "not -inf"),
    ('[[nodes]]\nname = "a"\nhost = "h"\nconnect_timeout = 0\n', 4, "from 0.1 to 3600"),
    ('[[nodes]]\nname = "a"\nhost = "h"\nconnect_timeout = 1e308\n', 4, "not 1e+308"),
    ('[[nodes]]\nname = "a"\nhost = "h"\nroles = "head"\n', 4,
     'must be a list of strings: write roles = ["head"]'),
    ('[[nodes]]\nname = "all"\nhost = "h"\n', 2, "node name 'all' is a selector word"),
    ('[[nodes]]\nname = "workers"\nhost = "h"\n', 2, "is a selector word"),
    # python is a command (words as sh splits them): a stray quote is refused here, not
    # left to each place that runs it on a node (issue 22 item 17).
    ('[defaults]\npython = "\'~/my venv/bin/python"\n[[nodes]]\nname = "a"\nhost = "h"\n', 2,
     "defaults.python \"'~/my venv/bin/python\" is not a command sh can split"),
    ('[[nodes]]\nname = "a"\nhost = "h"\npython = "\'\'"\n', 4, "names no program"),
])
def test_bad_inventory_names_file_line_and_problem(tmp_path, text, line, words):
    path = write(tmp_path, text)
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: " if line else f"{path}: "), message
    assert words in message


@pytest.mark.parametrize("value", ["[" * 3000 + "]" * 3000, "{a=" * 3000 + "1" + "}" * 3000,
                                   "[" * 40 + "]" * 40])
def test_deeply_nested_toml_is_a_clear_error(tmp_path, value):
    """A crafted file nested thousands deep (tomllib recurses per level) or merely deeper
    than any saf file needs: one line naming the file, exit 2 from the CLI, no traceback."""
    path = write(tmp_path, f'[[nodes]]\nname = "a"\nhost = "h"\nvars = {{ x = {value} }}\n')
    with pytest.raises(InventoryError, match="nested too deeply") as info:
        load_inventory(path)
    assert str(info.value).startswith(f"{path}: ")
    done = subprocess.run([sys.executable, "-m", "saf", "-i", str(path), "nodes"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"saf: {info.value}"]
    assert "Traceback" not in done.stderr
    assert "RecursionError" not in done.stderr


def test_missing_file_is_an_error_not_a_traceback(tmp_path):
    with pytest.raises(InventoryError, match="no such file"):
        load_inventory(tmp_path / "nope.toml")


def test_find_inventory_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SAF_INVENTORY", raising=False)
    monkeypatch.setenv("SAF_CONFIG_DIR", str(tmp_path / "cfg"))
    with pytest.raises(InventoryError, match="no inventory found"):
        find_inventory()
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "saf.toml").write_text("")
    assert find_inventory() == tmp_path / "cfg" / "saf.toml"
    (tmp_path / "saf.toml").write_text("")
    assert find_inventory() == tmp_path / "saf.toml"
    monkeypatch.setenv("SAF_INVENTORY", str(tmp_path / "env.toml"))
    assert find_inventory() == tmp_path / "env.toml"
    assert find_inventory(tmp_path / "flag.toml") == tmp_path / "flag.toml"


def test_ssh_config_aliases_resolve_as_openssh_would(tmp_path):
    config = tmp_path / "ssh_config"
    config.write_text("Host beta\n  HostName 10.0.0.2\n  Port 2222\n  User bob\n"
                      "Host *\n  User fallback\n")
    path = write(tmp_path, f"""\
        [defaults]
        ssh_config = "{config}"
        [[nodes]]
        name = "beta"
        host = "beta"
        [[nodes]]
        name = "gamma"
        host = "gamma.lan"
        user = "carol"
        port = 2200
        """)
    beta, gamma = load_inventory(path).nodes
    assert hostkeys.resolve(beta) == hostkeys.Endpoint("10.0.0.2", 2222, "bob")
    assert hostkeys.resolve(beta).pattern == "[10.0.0.2]:2222"
    # What the inventory says wins over the config, as on OpenSSH's command line.
    assert hostkeys.resolve(gamma) == hostkeys.Endpoint("gamma.lan", 2200, "carol")


# How a host and port are written, each with what it means: bracket-aware, as OpenSSH reads
# ProxyJump and ZeroMQ reads tcp:// endpoints.
ADDRESSES = [
    ("[::1]:22", Address("::1", 22)),
    ("host", Address("host")),
    ("host:22", Address("host", 22)),
    ("user@[fe80::1%eth0]:2222", Address("fe80::1%eth0", 2222, "user")),
]


@pytest.mark.parametrize(("text", "address"), ADDRESSES)
def test_proxyjump_hops_from_the_ssh_config_are_read_bracket_aware(tmp_path, text, address):
    """`[::1]:22` is host ::1 port 22 (it used to split at the first colon)."""
    config = tmp_path / "ssh_config"
    config.write_text(f"Host beta\n  ProxyJump {text}\n")
    path = write(tmp_path, f"""\
        [defaults]
        ssh_config = "{config}"
        [[nodes]]
        name = "beta"
        host = "beta"
        """)
    jump = hostkeys.resolve(load_inventory(path).nodes[0]).jump
    assert jump is not None
    assert parse_jump(jump) == [address]
    assert str(address) == text  # and written back the same way


def test_a_proxyjump_chain_is_read_hop_by_hop():
    spec = ", ".join(text for text, _ in ADDRESSES) + ",ssh://ops@bastion:2200"
    assert parse_jump(spec) == [a for _, a in ADDRESSES] + [Address("bastion", 2200, "ops")]


def test_a_bare_ipv6_address_has_no_port():
    assert parse_address("fe80::1%eth0") == Address("fe80::1%eth0")


@pytest.mark.parametrize(("text", "words"), [
    ("[::1", "without a matching ']'"),
    ("[::1]22", "expected ':PORT'"),
    ("host:ssh", "port ssh is not a number"),
    ("host:70000", "port 70000 is not a number"),
    ("@host", "nothing before '@'"),
    ("host/x:1", "not a host name"),
    ("user@:22", "no host"),
])
def test_a_malformed_address_says_what_is_wrong(text, words):
    with pytest.raises(AddressError, match=re.escape(words)):
        parse_address(text)


def test_a_node_address_brackets_an_ipv6_host():
    assert Node("v6", "fe80::1%eth0", user="ops", port=2222).address == "ops@[fe80::1%eth0]:2222"
    assert Node("v6", "::1").address == "::1"
    assert Node("v4", "10.0.0.2", port=22).address == "10.0.0.2:22"
