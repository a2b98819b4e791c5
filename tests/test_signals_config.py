"""The inventory's [signals] table and endpoint parsing: good values, and mistakes reported
with the file and line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from saf.errors import ConfigError, SafError
from saf.inventory import load_inventory
from saf.signals.book import Weights
from saf.signals.config import signals_config
from saf.signals.endpoints import parse_endpoint

NODES = """\
[[nodes]]
name = "alpha"
host = "10.0.0.5"
roles = ["head"]

[[nodes]]
name = "beta"
host = "10.0.0.6"
"""


def inventory(tmp_path: Path, signals: str = "") -> Path:
    path = tmp_path / "saf.toml"
    path.write_text(NODES + ("\n[signals]\n" + signals if signals else ""))
    return path


def test_defaults_follow_the_head(tmp_path: Path) -> None:
    """Without [signals], the endpoint is the head node's port 5555."""
    config = signals_config(load_inventory(inventory(tmp_path)))
    assert config.endpoints == ("tcp://10.0.0.5:5555",)
    assert config.weights == Weights(0.4, 0.3, 0.3)
    assert config.anomaly_threshold == 0.8
    assert signals_config(None).endpoints == ("tcp://127.0.0.1:5555",)


def test_full_table(tmp_path: Path) -> None:
    config = signals_config(load_inventory(inventory(tmp_path, """\
endpoints = ["ssh://beta:6000", "tcp://alpha:5556"]
anomaly_threshold = 0.9
gap_factor = 3
weights = { price = 0.5, sentiment = 0.5, anomaly = 0 }
""")))
    assert config.endpoints == ("ssh://beta:6000", "tcp://alpha:5556")
    assert config.weights == Weights(0.5, 0.5, 0.0)
    assert config.book_settings().gap_factor == 3.0
    assert config.book_settings().anomaly_threshold == 0.9


def test_ssh_flag_routes_the_default_through_the_head(tmp_path: Path) -> None:
    config = signals_config(load_inventory(inventory(tmp_path, "ssh = true\n")))
    assert config.endpoints == ("ssh://alpha:5555",)


@pytest.mark.parametrize(("table", "line", "words"), [
    ('endpoint = "tcp://a:1"\nbogus = 1\n', 12, "unknown key 'bogus'"),
    ('endpoint = "http://x"\n', 11, "must look like tcp://"),
    ('endpoint = "ssh://nosuch:5555"\n', 11, "no node named 'nosuch'"),
    ('endpoint = "tcp://host:70000"\n', 11, "port 70000"),
    ('endpoints = []\n', 11, "non-empty list"),
    ('anomaly_threshold = 1.5\n', 11, "anomaly_threshold must be a number from 0 to 1"),
    ('gap_factor = 0.5\n', 11, "gap_factor must be a number >= 1, not 0.5"),
    ('anomaly_threshold = nan\n', 11, "anomaly_threshold must be a number from 0 to 1, not nan"),
    ('gap_factor = inf\n', 11, "gap_factor must be a number >= 1, not inf"),
    ('ssh = "yes"\n', 11, "ssh must be true or false"),
    ('\nweights = { price = -1 }\n', 12, "weights.price must be a number"),
    ('weights = { price = 0.4, volume = 1 }\n', 11,
     "unknown key 'volume' in weights (known keys: anomaly, price, sentiment)"),
    ('weights = { price = 0, sentiment = 0, anomaly = 0 }\n', 11, "must not all be zero"),
    ('weights = 3\n', 11, "weights must be a table like { price = 0.4, sentiment = 0.3, "
     "anomaly = 0.3 }, not 3"),
    ('endpoints = ["tcp://a:1", 7]\n', 11, "endpoints[1] must be a string, not 7"),
    ('ssh = true\nendpoint = "tcp://a:1"\nendpoints = ["tcp://b:1"]\n', 13,
     "give endpoint or endpoints, not both"),
])
def test_mistakes_name_file_and_line(tmp_path: Path, table: str, line: int,
                                     words: str) -> None:
    path = inventory(tmp_path, table)
    with pytest.raises(ConfigError) as info:
        signals_config(load_inventory(path))
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: [signals] "), message
    assert words in message


def test_endpoint_forms(tmp_path: Path) -> None:
    inv = load_inventory(inventory(tmp_path))
    assert parse_endpoint("tcp://alpha:6000", inv).zmq_url() == "tcp://10.0.0.5:6000"
    assert parse_endpoint("tcp://example.org", None).zmq_url() == "tcp://example.org:5555"
    ssh = parse_endpoint("ssh://beta", inv)
    assert (ssh.node, ssh.port, ssh.zmq_url(4242)) == ("beta", 5555, "tcp://127.0.0.1:4242")
    assert parse_endpoint("tcp://beta:7000", inv, ssh=True).node == "beta"
    assert parse_endpoint("ipc:///tmp/x.sock").zmq_url() == "ipc:///tmp/x.sock"
    with pytest.raises(SafError, match="there is no inventory"):
        parse_endpoint("ssh://alpha:1", None)


@pytest.mark.parametrize(("written", "host", "port", "url"), [
    ("tcp://[::1]:22", "::1", 22, "tcp://[::1]:22"),
    ("tcp://host", "host", 5555, "tcp://host:5555"),
    ("tcp://host:22", "host", 22, "tcp://host:22"),
    ("tcp://[fe80::1%eth0]:2222", "fe80::1%eth0", 2222, "tcp://[fe80::1%eth0]:2222"),
    ("tcp://::1", "::1", 5555, "tcp://[::1]:5555"),
])
def test_endpoint_hosts_are_read_bracket_aware(written: str, host: str, port: int,
                                               url: str) -> None:
    """The same host:port reader as ProxyJump hops: an IPv6 host is bracketed for ZeroMQ."""
    endpoint = parse_endpoint(written)
    assert (endpoint.host, endpoint.port, endpoint.zmq_url()) == (host, port, url)


def test_an_endpoint_with_a_user_is_refused_with_what_to_write() -> None:
    with pytest.raises(SafError, match=re.escape("has no user (user@); write "
                                                 "tcp://[fe80::1%eth0]:2222")):
        parse_endpoint("tcp://user@[fe80::1%eth0]:2222")
    with pytest.raises(SafError, match="has no user"):
        parse_endpoint("ssh://user@[::1]:22")


def test_an_ssh_endpoint_names_a_node_with_or_without_a_port(tmp_path: Path) -> None:
    inv = load_inventory(inventory(tmp_path))
    assert (parse_endpoint("ssh://beta:22", inv).node, parse_endpoint("ssh://beta:22", inv).port) \
        == ("beta", 22)
    with pytest.raises(SafError, match=re.escape("no node named '::1'")):
        parse_endpoint("ssh://[::1]:22", inv)
