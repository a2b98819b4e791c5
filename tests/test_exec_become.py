"""`saf exec --become` for real: the throwaway unprivileged user of tests/test_recipe_become.py
(its sudo needs a password, or not, as a test's sudoers rule says), logged in to through
OpenSSH's sshd on loopback. The command runs as root; the password reaches sudo on stdin only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from saf.events import Event
from saf.exec import Become, CommandFinished, exec_on
from saf.fleet import Fleet
from saf.inventory import load_inventory
from tests.test_recipe_become import (
    _MISSING,
    ProcWatch,
    SudoUser,
    assert_no_process_left,
    assert_nowhere_on_disk,
)

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or bool(_MISSING),
    reason="needs root to create a throwaway user with a sudo password, and "
           + (", ".join(_MISSING) or "root") + " (CI: apt-get install sudo openssh-server)")


@pytest.fixture(scope="module")
def user():
    made = None
    try:
        made = SudoUser()
        yield made
    finally:
        if made is not None:
            made.close()
        else:
            subprocess.run(["userdel", "--remove", f"saft{os.getpid() % 100000}"],
                           capture_output=True)
            Path(f"/etc/sudoers.d/saf-test-{os.getpid()}").unlink(missing_ok=True)


def saf_exec(user: SudoUser, *args: str, stdin: str | None = None):
    env = dict(os.environ, SAF_INVENTORY=str(user.inventory))
    done = subprocess.run([sys.executable, "-m", "saf", "exec", *args, "--json"], env=env,
                          input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=120)
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return done, events


def lines(events: list[dict]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for e in events:
        if e["event"] == "output":
            out.setdefault(e["node"], []).append(e["line"])
    return out


def finished(events: list[dict]) -> dict[str, dict]:
    return {e["node"]: e for e in events if e["event"] == "command_finished"}


def test_become_without_a_password(user: SudoUser) -> None:
    user.allow("NOPASSWD: ALL")
    done, events = saf_exec(user, "id -u")
    assert done.returncode == 0, done.stderr
    assert set(map(tuple, lines(events).values())) == {(str(_uid(user)),)}
    done, events = saf_exec(user, "id -u; touch " + str(user.out / "nopass"), "--become")
    assert done.returncode == 0, done.stdout + done.stderr
    assert lines(events) == {"alpha": ["0"], "beta": ["0"]}
    assert (user.out / "nopass").stat().st_uid == 0


def test_become_with_the_password_on_stdin(user: SudoUser) -> None:
    user.allow("ALL")
    # No terminal and no --password-stdin: each node fails, saying how to give it.
    done, events = saf_exec(user, "id -u", "--become")
    assert done.returncode == 1
    for node in ("alpha", "beta"):
        assert finished(events)[node]["reason"] == "become"
        assert "--password-stdin" in finished(events)[node]["message"]
    assert lines(events) == {}
    # The password on stdin: root on every node, and the password nowhere but sudo's stdin.
    with ProcWatch(user.password) as watch:
        done, events = saf_exec(user, "id -u", "--become", "--password-stdin",
                                stdin=user.password + "\n")
    assert done.returncode == 0, done.stdout + done.stderr
    assert lines(events) == {"alpha": ["0"], "beta": ["0"]}
    assert watch.saw_sudo, "the scan never saw sudo -S: it proves nothing"
    assert watch.hits == []
    assert user.password not in done.stdout + done.stderr
    # A wrong one: sudo refuses it, said as such, and the command does not run.
    with ProcWatch("not the password") as watch:
        done, events = saf_exec(user, "id -u", "--become", "--password-stdin",
                                stdin="not the password\n")
    assert done.returncode == 1
    assert watch.hits == []
    for node in ("alpha", "beta"):
        message = finished(events)[node]["message"]
        assert message.startswith("become: sudo refused the password (")
        assert "incorrect password" in message
    assert lines(events) == {}
    assert "not the password" not in done.stdout + done.stderr
    assert_no_process_left(user)
    assert_nowhere_on_disk(user.password, Path(f"/home/{user.name}"), user.root)


async def test_the_password_is_asked_once_for_every_node(user: SudoUser) -> None:
    user.allow("ALL")
    asked: list[int] = []

    async def ask() -> str | None:
        asked.append(1)
        return user.password

    got: list[Event] = []
    inventory = load_inventory(str(user.inventory))
    async with Fleet(inventory) as fleet:
        results = await exec_on(fleet, list(inventory.nodes), "id -u", got.append,
                                become=Become(ask))
    assert [r.status for r in results] == ["ok", "ok"]
    assert len(asked) == 1
    assert all(user.password not in str(e.to_json()) for e in got)
    assert all(isinstance(r, CommandFinished) for r in results)


def _uid(user: SudoUser) -> int:
    import pwd
    return pwd.getpwnam(user.name).pw_uid
