"""Every headless command of saf that connects, as command lines on one made-up cluster: what
tests/test_cli_start.py checks is imported at each one's first connection, and what
tests/perf/bench_cli.py times up to it."""

from __future__ import annotations

import json
import struct
import warnings
from pathlib import Path

# Each reaches its node with libzmq, not Python's socket: an audit hook does not see it.
THROUGH_ZMQ = frozenset({"signals tail", "signals record"})


def connecting(folder: Path, port: int) -> dict[str, list[str]]:
    """label -> the words after `saf -i INVENTORY` of every headless command that connects
    (to the inventory's nodes, or to the signal endpoint 127.0.0.1:PORT)."""
    endpoint = f"127.0.0.1:{port}"
    return {
        "nodes": ["nodes"],
        "exec": ["exec", "true"],
        "trust": ["trust", "--yes", "closed"],
        "keys push": ["keys", "push", "--password-stdin", "closed"],
        "wait": ["wait", "--timeout", "20"],
        "run hello": ["run", "hello"],
        "run ray-up": ["run", "ray-up"],
        "up": ["up"],
        "up --check": ["up", "--check"],
        "down": ["down"],
        "status": ["status"],
        "doctor": ["doctor"],
        "top --once": ["top", "--once"],
        "record": ["record", str(folder / "rec.jsonl"), "--seconds", "20"],
        "serve --metrics": ["serve", "--metrics", "127.0.0.1:0"],
        "net test": ["net", "test", "--duration", "0.1", "--warmup", "0"],
        "ray status": ["ray", "status"],
        "ray jobs": ["ray", "jobs"],
        "ray submit": ["ray", "submit", "--working-dir", str(folder / "job"), "--no-wait", "--",
                       "python", "-c", "pass"],
        "models": ["models"],
        "models check": ["models", "check"],
        "models stop": ["models", "stop", "closed:8080"],
        "models restart": ["models", "restart", "closed:8080"],
        "models logs": ["models", "logs", "closed:8080"],
        "models fit": ["models", "fit", str(folder / "model")],
        "signals tail": ["signals", "tail", f"tcp://{endpoint}", "--duration", "20"],
        "signals record": ["signals", "record", str(folder / "sig.bin"), f"tcp://{endpoint}",
                           "--duration", "20"],
    }


def _tiny_model(model: Path) -> None:
    """A safetensors model folder for `saf models fit`: a config and one small tensor."""
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text(json.dumps(
        {"num_hidden_layers": 4, "hidden_size": 256, "num_attention_heads": 8,
         "num_key_value_heads": 2, "intermediate_size": 512, "vocab_size": 1000,
         "max_position_embeddings": 32768}))
    header = json.dumps({"w": {"dtype": "BF16", "shape": [500], "data_offsets": [0, 1000]}})
    (model / "model.safetensors").write_bytes(
        struct.pack("<Q", len(header)) + header.encode() + bytes(1000))


def inventory(folder: Path, port: int) -> Path:
    """A two-node cluster whose nodes are both `port` (a speed test needs two), declaring a
    little of everything `saf up` brings."""
    with warnings.catch_warnings():  # cryptography's notices about DSA, on asyncssh's import
        warnings.simplefilter("ignore")
        import asyncssh

    key = folder / "id_ed25519"
    made = asyncssh.generate_private_key("ssh-ed25519")
    made.write_private_key(key)
    made.write_public_key(f"{key}.pub")  # what `saf keys push` installs
    (folder / "job").mkdir(exist_ok=True)  # for `saf ray submit --working-dir`
    _tiny_model(folder / "model")
    path = folder / "saf.toml"
    path.write_text(f"""[cluster]
name = "bench"

[defaults]
identity = "{key}"
known_hosts = "{folder / 'known_hosts'}"
connect_timeout = 20

[[nodes]]
name = "closed"
host = "127.0.0.1"
port = {port}
roles = ["head"]
os = "linux"

[[nodes]]
name = "second"
host = "127.0.0.1"
port = {port}
roles = ["worker"]
os = "linux"

[up]
steps = [{{ recipe = "linux-tuning" }}]

[ray]
head = "closed"

[[services]]
name = "publisher"
on = "closed"
command = "python publish.py --port 9000"
check = "http://127.0.0.1:9000/health"
after = ["ray"]

[[models]]
name = "qwen"
engine = "llama-server"
model = "/models/qwen3-8b-q4.gguf"
on = "closed"
port = 8080
""")
    return path
