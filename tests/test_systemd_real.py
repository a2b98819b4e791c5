"""A declared service on a node whose PID 1 is a real systemd (tests/helpers/systemd_node.py:
a Debian tree booted by systemd-nspawn in its own namespaces, reached over SSH on a veth
pair): `saf up` installs a system unit that is active and enabled; a `kill -9` of its
program is undone by systemd itself and `saf status` counts the restart; disabled by hand,
it is `differs` (it runs, but would not start at boot) until `saf up` enables it again;
after a reboot of the node (poweroff, the same disk booted again) the service runs with
nothing from saf; `saf down` leaves no unit, no file, no link and no process. A login user
who is not root gets a --user unit, kept across the reboot by lingering. A declared model's
server is kept the same way, as unit saf-model-NAME.

Skips with the reason when this machine cannot: not root, no debootstrap or systemd-nspawn,
the Debian mirror out of reach, the boot refused (cgroups, permissions)."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomli_w

from tests.helpers.systemd_node import BootError, SystemdNode, build_tree, systemd_skip_reason
from tests.helpers.waiting import until

# In the home of whoever runs it (root, or the login user of a --user unit).
BEAT = """import os, time
path = os.path.expanduser("~/heartbeat")
while True:
    with open(path, "a") as f:
        f.write("%d %f\\n" % (os.getpid(), time.time()))
    time.sleep(0.2)
"""
UNIT = "saf-beat.service"
SHOWN = ("LoadState", "ActiveState", "SubState", "UnitFileState", "MainPID", "NRestarts",
         "FragmentPath")


@pytest.fixture(scope="module")
def tree() -> Path:
    reason = systemd_skip_reason()
    if reason:
        pytest.skip(reason)
    try:
        return build_tree()
    except BootError as exc:  # no mirror here: nothing of saf's to test
        pytest.skip(f"the Debian tree could not be built: {exc}")


def declare(inventory: Path) -> None:
    """The declared service: the heartbeat, restarted always, checked by its file."""
    declared = {"services": [{"name": "beat", "on": "sysd",
                              "command": "/usr/bin/python3 /opt/beat.py",
                              "restart": "always", "check": "test -s ~/heartbeat"}]}
    with inventory.open("a") as f:
        f.write("\n" + tomli_w.dumps(declared))


@pytest.fixture
def node(tmp_path: Path, tree: Path) -> Iterator[SystemdNode]:
    made = SystemdNode(tmp_path / "node", tree, name="sysd")
    try:
        made.write("/opt/beat.py", BEAT)
        declare(made.inventory_path)
        try:
            made.boot()
        except BootError as exc:
            pytest.skip(f"systemd does not boot here: {exc}")
        yield made
    finally:
        made.close()




def _beaters(node: SystemdNode, home: str = "/root") -> set[int]:
    """The pids that wrote the heartbeat (in the node's own numbering)."""
    text = node.read(f"{home}/heartbeat") or ""
    return {int(line.split()[0]) for line in text.splitlines() if line.strip()}


def _row(node: SystemdNode, **env: str) -> dict:
    done = node.saf("status", "--json", **env)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [r for r in json.loads(done.stdout)["services"] if r["service"] == "beat"]
    assert len(rows) == 1, done.stdout
    return rows[0]


def test_system_unit_restarted_by_systemd_kept_across_reboot_and_removed(
        node: SystemdNode) -> None:
    up = node.saf("up")
    assert up.returncode == 0, up.stdout + up.stderr

    # A system unit, saf's file, active and enabled (wanted by multi-user.target).
    props = node.unit(UNIT, *SHOWN)
    assert props["FragmentPath"] == f"/etc/systemd/system/{UNIT}", props
    assert (props["LoadState"], props["ActiveState"], props["UnitFileState"]) == \
        ("loaded", "active", "enabled"), props
    assert node.exec(["test", "-L", f"/etc/systemd/system/multi-user.target.wants/{UNIT}"],
                     check=False).returncode == 0
    first = int(props["MainPID"])
    assert until(lambda: first in _beaters(node))
    assert _row(node)["restarts"] == 0

    # kill -9 of its program: systemd (Restart=always, RestartSec=2) starts it again.
    node.exec(["kill", "-9", str(first)])

    def restarted() -> bool:
        now = node.unit(UNIT, *SHOWN)
        return now["ActiveState"] == "active" and now["MainPID"] not in ("0", str(first))
    assert until(restarted), node.unit(UNIT, *SHOWN)
    second = int(node.unit(UNIT, "MainPID")["MainPID"])
    assert until(lambda: second in _beaters(node))
    row = _row(node)
    assert (row["manager"], row["restarts"], row["kept_across_reboots"], row["verdict"]) == \
        ("systemd", 1, True, "as declared"), row

    # Disabled by hand: it runs, but no boot would start it. saf status says so (exit 1),
    # --check sees the drift, saf up enables it again.
    node.exec(["systemctl", "disable", UNIT])
    disabled = node.saf("status", "--json")
    assert disabled.returncode == 1, disabled.stdout + disabled.stderr
    row = next(r for r in json.loads(disabled.stdout)["services"] if r["service"] == "beat")
    assert (row["state"], row["kept_across_reboots"], row["verdict"]) == \
        ("active", False, "differs"), row
    assert "will not start at boot" in row["why"], row
    assert node.saf("up", "--check").returncode == 2
    enable = node.saf("up")
    assert enable.returncode == 0, enable.stdout + enable.stderr
    assert node.unit(UNIT, "UnitFileState")["UnitFileState"] == "enabled"

    # A reboot: the same disk booted again; systemd starts the unit at boot, saf does nothing.
    node.reboot()
    after = node.unit(UNIT, *SHOWN)
    assert (after["ActiveState"], after["UnitFileState"]) == ("active", "enabled"), after
    third = int(after["MainPID"])
    assert until(lambda: third in _beaters(node)), "the service does not beat after the reboot"
    assert _row(node)["verdict"] == "as declared"
    check = node.saf("up", "--check")
    assert check.returncode == 0, check.stdout + check.stderr

    # saf down: stopped, disabled, its file and its link gone, its program ended.
    down = node.saf("down")
    assert down.returncode == 0, down.stdout + down.stderr
    gone = node.unit(UNIT, "LoadState", "ActiveState")
    assert gone == {"LoadState": "not-found", "ActiveState": "inactive"}, gone
    assert node.read(f"/etc/systemd/system/{UNIT}") is None
    assert node.exec(["test", "-e", f"/etc/systemd/system/multi-user.target.wants/{UNIT}"],
                     check=False).returncode != 0
    assert node.exec(["pgrep", "-f", "/opt/beat.py"], check=False).stdout.strip() == ""


def test_user_unit_with_lingering_kept_across_reboot(node: SystemdNode) -> None:
    """A login user who is not root gets a --user unit; this node has no polkit, so logind
    refuses that user's own `loginctl enable-linger` and saf says what to do; once root has
    switched lingering on, the unit runs, and after a reboot it runs again with nobody
    logged in and nothing from saf."""
    inventory = node.add_login("ops")
    declare(inventory)
    as_ops = {"SAF_INVENTORY": str(inventory)}
    refused = node.saf("up", **as_ops)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "Access denied" in refused.stdout, refused.stdout
    assert "sudo loginctl enable-linger ops" in refused.stdout, refused.stdout

    node.exec(["loginctl", "enable-linger", "ops"])  # root, once, as the message says
    up = node.saf("up", **as_ops)
    assert up.returncode == 0, up.stdout + up.stderr
    path = f"/home/ops/.config/systemd/user/{UNIT}"
    props = node.user_unit("ops", UNIT, *SHOWN)
    assert (props["FragmentPath"], props["ActiveState"], props["UnitFileState"]) == \
        (path, "active", "enabled"), props
    assert node.read(f"/etc/systemd/system/{UNIT}") is None  # not a system unit
    row = _row(node, **as_ops)
    assert (row["manager"], row["verdict"]) == ("systemd-user", "as declared"), row

    node.reboot()
    after = node.user_unit("ops", UNIT, *SHOWN)
    assert after["ActiveState"] == "active", after
    again = int(after["MainPID"])
    assert until(lambda: again in _beaters(node, "/home/ops")), "no beat after the reboot"

    down = node.saf("down", **as_ops)
    assert down.returncode == 0, down.stdout + down.stderr
    assert node.read(path) is None
    assert node.user_unit("ops", UNIT, "LoadState")["LoadState"] == "not-found"


ASK = """import json, sys, urllib.request
body = json.dumps({"prompt": "hello", "max_tokens": 2}).encode()
request = urllib.request.Request(sys.argv[1], body, {"Content-Type": "application/json"})
print(json.load(urllib.request.urlopen(request, timeout=60))["choices"][0]["text"])
"""


def _python_binds() -> tuple[str, ...] | None:
    """This interpreter, its venv and the folder llama_cpp is in: what a node needs to run
    llama-cpp-python's server from the same paths (None: llama_cpp is not installed)."""
    found = importlib.util.find_spec("llama_cpp")
    if found is None or found.origin is None:
        return None
    return tuple(dict.fromkeys([sys.base_prefix, sys.prefix,
                                str(Path(found.origin).parents[1])]))


def _model_row(node: SystemdNode) -> dict:
    done = node.saf("status", "--json")
    rows = [r for r in json.loads(done.stdout)["models"] if r["model"] == "tiny"]
    assert len(rows) == 1, done.stdout + done.stderr
    return rows[0]


def _answers(node: SystemdNode, port: int) -> bool:
    """The model server answers a completion, asked from inside the node."""
    return node.exec(["/usr/bin/python3", "-c", ASK, f"http://127.0.0.1:{port}/v1/completions"],
                     check=False, timeout=90).returncode == 0


def test_model_server_unit_restarted_and_kept_across_reboot(tmp_path: Path, tree: Path) -> None:
    """A declared model is served as unit saf-model-NAME (llama-cpp-python from this
    machine's Python, bound read-only into the node): systemd restarts it after kill -9, a
    reboot starts it again, and `saf status` finds the new server each time through the
    record saf keeps up to date from the unit's MainPID."""
    binds = _python_binds()
    if binds is None:
        pytest.skip("llama-cpp-python[server] is not installed")
    from tests.helpers.tiny_gguf import write_tiny_llama

    (tmp_path / "models").mkdir()
    model = write_tiny_llama(tmp_path / "models" / "tiny.gguf")
    port, unit = 8099, "saf-model-tiny.service"  # the node's own network: no other user
    node = SystemdNode(tmp_path / "node", tree, name="sysd",
                       binds=(*binds, str(model.parent)))
    try:
        text = node.inventory_path.read_text().replace(
            'python = "/usr/bin/python3"', f"python = {json.dumps(sys.executable)}")
        declared = {"models": [{"name": "tiny", "engine": "llama-cpp-python", "on": "sysd",
                                "model": str(model), "port": port, "ctx_size": 256}]}
        node.inventory_path.write_text(text + "\n" + tomli_w.dumps(declared))
        try:
            node.boot()
        except BootError as exc:
            pytest.skip(f"systemd does not boot here: {exc}")
        up = node.saf("up", timeout=300)
        assert up.returncode == 0, up.stdout + up.stderr
        props = node.unit(unit, *SHOWN)
        assert (props["ActiveState"], props["UnitFileState"]) == ("active", "enabled"), props
        assert _answers(node, port)
        row = _model_row(node)
        assert (row["answers"], row["kept_across_reboots"], row["verdict"]) == \
            (True, True, "as declared"), row

        first = props["MainPID"]
        node.exec(["kill", "-9", first])
        assert until(lambda: node.unit(unit, "MainPID")["MainPID"] not in ("0", first))
        assert until(lambda: _answers(node, port), 120)
        row = _model_row(node)
        assert (row["answers"], row["restarts"], row["verdict"]) == (True, 1, "as declared"), row

        node.reboot()
        assert node.unit(unit, "ActiveState")["ActiveState"] in ("active", "activating")
        assert until(lambda: _answers(node, port), 120), "no answer after the reboot"
        row = _model_row(node)
        assert (row["answers"], row["verdict"]) == (True, "as declared"), row

        down = node.saf("down")
        assert down.returncode == 0, down.stdout + down.stderr
        assert node.unit(unit, "LoadState")["LoadState"] == "not-found"
        assert not _answers(node, port)
    finally:
        node.close()
