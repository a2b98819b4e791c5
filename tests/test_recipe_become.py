"""`become = true` for real: a throwaway unprivileged user whose sudo needs a password, logged
in to through OpenSSH's sshd on loopback, running recipes through the CLI.

Needs root (to make the user and its sudoers drop-in), `useradd`, `sudo`, `visudo` and sshd;
CI installs them. Everything made is removed afterwards: the user and its home, the sudoers
file, sudo's ticket folder for the user.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from saf.events import Event
from saf.fleet import Fleet
from saf.inventory import load_inventory
from saf.recipe import load_recipe
from saf.recipe.events import NodeStepFinished, StepOutput
from saf.recipe.prepare import prepare
from saf.recipe.runner import Runner
from tests.helpers.servers import SSHD, ClientKeys, OpenSSHServer, write_inventory

_MISSING = [tool for tool in ("useradd", "userdel", "chpasswd", "sudo", "visudo")
            if not shutil.which(tool)] + ([] if SSHD else ["sshd"])
pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or bool(_MISSING),
    reason="needs root to create a throwaway user with a sudo password, and "
           + (", ".join(_MISSING) or "root") + " (CI: apt-get install sudo openssh-server)")


class SudoUser:
    """The throwaway user, the sshd that logs in as it, and an inventory reaching it."""

    def __init__(self) -> None:
        self.name = f"saft{os.getpid() % 100000}"
        # Spaces, quotes, a dollar and a backslash: it must reach sudo byte for byte.
        self.password = f"pw {secrets.token_hex(6)} $HOME 'q\" \\x"
        self.root = Path(tempfile.mkdtemp(prefix="saf-become-"))
        self.root.chmod(0o755)  # sshd reads authorized_keys as the user
        self.sudoers = Path(f"/etc/sudoers.d/saf-test-{os.getpid()}")
        self.sudo_log = self.root / "sudo.log"
        self.out = self.root / "out"  # root's: only a become step can write here
        self.out.mkdir(mode=0o755)
        self.server: OpenSSHServer | None = None
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", self.name],
                       check=True, capture_output=True)
        subprocess.run(["chpasswd"], input=f"{self.name}:{self.password}\n", text=True,
                       check=True, capture_output=True)
        keys = ClientKeys(self.root / "operator")
        self.server = OpenSSHServer(self.root / "sshd", keys)
        (self.root / "sshd" / "authorized_keys").chmod(0o644)
        nodes = [{"name": n, "host": "127.0.0.1", "port": self.server.port}
                 for n in ("alpha", "beta")]
        self.inventory = write_inventory(self.root / "saf.toml", keys, nodes, user=self.name)

    def allow(self, rule: str) -> None:
        """Install the sudoers drop-in with `rule` for the user (validated first)."""
        draft = self.root / "sudoers"
        draft.write_text(f"Defaults:{self.name} !requiretty, lecture=never, "
                         f"logfile={self.sudo_log}\n{self.name} ALL=(ALL:ALL) {rule}\n")
        subprocess.run(["visudo", "-cf", str(draft)], check=True, capture_output=True)
        draft.chmod(0o440)
        shutil.copyfile(draft, self.sudoers)
        self.sudoers.chmod(0o440)
        self.sudo_log.unlink(missing_ok=True)

    def processes(self) -> list[str]:
        found = subprocess.run(["pgrep", "-a", "-u", self.name], capture_output=True,
                               text=True).stdout
        return found.splitlines()

    def close(self) -> None:
        try:
            if self.server:
                self.server.stop()
        finally:
            self.sudoers.unlink(missing_ok=True)
            subprocess.run(["pkill", "-KILL", "-u", self.name], capture_output=True)
            subprocess.run(["userdel", "--remove", self.name], capture_output=True)
            shutil.rmtree(f"/run/sudo/ts/{self.name}", ignore_errors=True)
            Path(f"/run/sudo/ts/{self.name}").unlink(missing_ok=True)
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def user():
    made = None
    try:
        made = SudoUser()
        yield made
    finally:
        if made is not None:
            made.close()
        else:  # half made: take back whatever exists
            subprocess.run(["userdel", "--remove", f"saft{os.getpid() % 100000}"],
                           capture_output=True)
            Path(f"/etc/sudoers.d/saf-test-{os.getpid()}").unlink(missing_ok=True)


RECIPE = """name = "become-test"
[vars]
dir = "{out}"

[[steps]]
name = "who"
run = "id -un"

[[steps]]
name = "as root"
become = true
on = "alpha"
run = "sleep 1; id -u > {{dir}}/made-by-root"
"""


def write_recipe(user: SudoUser, tmp_path: Path) -> Path:
    path = tmp_path / "become.toml"
    path.write_text(RECIPE.format(out=user.out))
    return path


class ProcWatch:
    """Scans every process's command line and environment while a run goes on, for a secret;
    notes whether it saw sudo at all (so a clean scan means something)."""

    def __init__(self, secret: str) -> None:
        self.secret = secret.encode()
        self.hits: list[str] = []
        self.saw_sudo = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._scan, daemon=True)

    def _scan(self) -> None:
        while not self._stop.is_set():
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                for part in ("cmdline", "environ"):
                    try:
                        data = Path(f"/proc/{pid}/{part}").read_bytes()
                    except OSError:
                        continue
                    if self.secret in data:
                        self.hits.append(f"{pid} {part}: {data[:200]!r}")
                    if part == "cmdline" and data.startswith(b"sudo\0-S"):
                        self.saw_sudo = True
            time.sleep(0.01)

    def __enter__(self) -> ProcWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def saf_run(user: SudoUser, state: Path, *args: str, stdin: str | None = None):
    env = dict(os.environ, SAF_INVENTORY=str(user.inventory), SAF_STATE_DIR=str(state),
               SAF_CONFIG_DIR=str(state / "config"))
    return subprocess.run([sys.executable, "-m", "saf", "run", *args, "--json"], env=env,
                          input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=120)


def finished(stdout: str) -> dict[tuple[int, str], dict]:
    events = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return {(e["step"], e["node"]): e for e in events if e["event"] == "node_step_finished"}


def outputs(stdout: str, step: int) -> set[str]:
    events = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return {e["line"] for e in events if e["event"] == "step_output" and e["step"] == step}


def assert_no_process_left(user: SudoUser) -> None:
    deadline = time.monotonic() + 10  # sshd's session processes take a moment to go
    while user.processes() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert user.processes() == []
    # This user's own folder, never the machine's: another worker's become test may be
    # writing its made-by-root at this moment (a machine-wide pgrep once caught it).
    left = subprocess.run(["pgrep", "-a", "-f", f"{user.out}/made-by-root"],
                          capture_output=True, text=True).stdout
    assert left == ""


def assert_nowhere_on_disk(secret: str, *folders: Path) -> None:
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file() and not path.is_symlink():
                assert secret.encode() not in path.read_bytes(), f"password found in {path}"


def test_nopasswd_sudo_needs_no_password(user: SudoUser, tmp_path: Path) -> None:
    """Where `sudo -n` works, saf uses it and never asks (stdin is /dev/null: no terminal)."""
    user.allow("NOPASSWD: ALL")
    (user.out / "made-by-root").unlink(missing_ok=True)
    result = saf_run(user, tmp_path / "state", str(write_recipe(user, tmp_path)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert outputs(result.stdout, 0) == {user.name}  # logged in as the user, not root
    made = user.out / "made-by-root"
    assert made.stat().st_uid == 0
    assert made.read_text() == "0\n"
    log = user.sudo_log.read_text()
    assert "incorrect password" not in log
    assert "a password is required" not in log
    assert_no_process_left(user)


def test_password_sudo_from_the_cli(user: SudoUser, tmp_path: Path) -> None:
    """sudo -n first; then the password, asked once, fed to sudo -S on stdin; never on a command
    line, in the environment, the run log or any file; a wrong one fails the step clearly."""
    user.allow("ALL")
    recipe = write_recipe(user, tmp_path)
    made = user.out / "made-by-root"
    made.unlink(missing_ok=True)
    state = tmp_path / "state"

    # No terminal and no --password-stdin: nothing to ask with; the step fails and says so.
    result = saf_run(user, state, str(recipe))
    assert result.returncode == 1
    failed = finished(result.stdout)[(1, "alpha")]
    assert failed["status"] == "failed"
    assert "no terminal to ask on" in failed["message"]
    assert "--password-stdin" in \
        failed["message"]
    assert not made.exists()

    # The password on stdin: the become step runs as root.
    with ProcWatch(user.password) as watch:
        result = saf_run(user, state, str(recipe), "--password-stdin",
                         stdin=user.password + "\n")
    assert result.returncode == 0, result.stdout + result.stderr
    assert finished(result.stdout)[(1, "alpha")]["status"] == "changed"
    assert made.stat().st_uid == 0
    assert made.read_text() == "0\n"
    assert watch.saw_sudo, "the scan never saw sudo running: it proves nothing"
    assert watch.hits == []
    # sudo's own log: `sudo -n` was tried first and refused, then the password was taken.
    entries = [line for line in user.sudo_log.read_text().split("\n") if line and
               not line.startswith(" ")]
    assert "a password is required" in entries[-3]  # the probe of the second run
    assert "incorrect password" not in " ".join(entries[-2:])
    assert user.password not in user.sudo_log.read_text()
    assert_no_process_left(user)

    # A wrong password: sudo refuses it, the step fails cleanly naming that, nothing is made.
    made.unlink()
    with ProcWatch("not the password") as watch:
        result = saf_run(user, state, str(recipe), "--password-stdin",
                         stdin="not the password\n")
    assert result.returncode == 1
    failed = finished(result.stdout)[(1, "alpha")]
    assert failed["status"] == "failed"
    assert "sudo on alpha refused the password" in failed["message"]
    assert "incorrect password" in failed["message"]
    assert not made.exists()
    assert watch.hits == []
    assert_no_process_left(user)

    # Neither password was written anywhere: the run logs, the user's home, sshd's folder.
    assert_nowhere_on_disk(user.password, state, Path(f"/home/{user.name}"), user.root)
    assert_nowhere_on_disk("not the password", state, Path(f"/home/{user.name}"), user.root)
    assert len(list((state / "runs").glob("*.jsonl"))) == 3


async def test_password_asked_once_for_many_nodes(user: SudoUser, tmp_path: Path) -> None:
    """The runner's ask_password callback (what the cockpit's modal answers) is called once,
    however many nodes need the password."""
    user.allow("ALL")
    recipe = tmp_path / "both.toml"
    recipe.write_text(RECIPE.format(out=user.out).replace('on = "alpha"\n', "")
                      .replace("made-by-root", "made-by-root-{node.name}"))
    asked: list[str] = []

    async def ask(prompt: str) -> str | None:
        asked.append(prompt)
        return user.password

    events: list[Event] = []
    async with Fleet(load_inventory(user.inventory)) as fleet:
        prepared = await prepare(load_recipe(recipe), fleet, {}, None)
        status = await Runner(prepared, fleet, events.append, run_id="t",
                              ask_password=ask).run()
    assert status == "ok"
    assert asked == ["sudo password for the nodes of 'become-test': "]
    assert {e.node: e.status for e in events if isinstance(e, NodeStepFinished)
            and e.step == 1} == {"alpha": "changed", "beta": "changed"}
    for node in ("alpha", "beta"):
        assert (user.out / f"made-by-root-{node}").stat().st_uid == 0
    assert all(user.password not in e.line for e in events if isinstance(e, StepOutput))
    assert_no_process_left(user)


async def test_password_modal_in_the_cockpit(user: SudoUser, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The Recipes screen asks with its modal, once, and the become step runs as root."""
    from saf.screens.recipe_modals import PasswordModal

    from saf.inventory import load_inventory
    from saf.recipe import library
    from tests.snapshot_apps._recipes import make_recipes_app

    user.allow("ALL")
    (user.out / "made-by-root").unlink(missing_ok=True)
    config = tmp_path / "config"
    (config / "recipes").mkdir(parents=True)
    write_recipe(user, config / "recipes")
    monkeypatch.setenv("SAF_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("SAF_CONFIG_DIR", str(config))
    app = make_recipes_app(None, inventory=load_inventory(user.inventory),
                           recipe_library=library.available)  # the user's folder too
    asked: set[int] = set()  # the modals that came up
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("4")
        await pilot.pause()
        screen = app.screen
        options = screen.query_one("#recipes-list")
        names = [options.get_option_at_index(i).id for i in range(options.option_count)]
        options.highlighted = names.index("become")
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        await pilot.click("#run")
        for _ in range(200):  # until the modal is up or the run is over
            await pilot.pause(0.05)
            if isinstance(app.screen, PasswordModal) and id(app.screen) not in asked:
                asked.add(id(app.screen))
                app.screen.query_one("#password").value = user.password  # type: ignore
                await pilot.press("enter")
            if screen.state is not None and screen.state.status not in ("running", "idle") \
                    and not isinstance(app.screen, PasswordModal):
                break
        await screen.workers.wait_for_complete()
        await pilot.pause()
        assert screen.state is not None
        assert screen.state.status == "ok"
    assert len(asked) == 1
    made = user.out / "made-by-root"
    assert made.stat().st_uid == 0
    assert made.read_text() == "0\n"
    assert_nowhere_on_disk(user.password, tmp_path)
    assert_no_process_left(user)
