"""Secrets: read from an env_file or saf's environment, shown as `***` everywhere saf writes.

The end-to-end test plants a token in an env_file that saf.toml names, runs a recipe step
that prints it on a real loopback node (`saf run`, a subprocess), and looks for the token
in everything that run left: stdout, stderr, the run log, every file of saf's state."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from saf import secrets
from saf.errors import ConfigError
from saf.recipe.events import StepOutput

TOKEN = "hf_plantedTOKEN0123456789abcdef"


@pytest.fixture(autouse=True)
def _forget() -> None:
    secrets.forget_all()
    yield
    secrets.forget_all()


def test_env_file_lines(tmp_path: Path) -> None:
    path = tmp_path / "a.env"
    path.write_text("# a comment\n\nexport HF_TOKEN='abc def'\nPLAIN = x=y \n"
                    'QUOTED="say \'hi\'"\nEMPTY=\n')
    assert secrets.read_env_file(path) == {"HF_TOKEN": "abc def", "PLAIN": "x=y",
                                           "QUOTED": "say 'hi'", "EMPTY": ""}


@pytest.mark.parametrize(("text", "line", "words"), [
    ("A=1\nnot a pair\n", 2, "a line must be KEY=VALUE"),
    ("A=1\n9X=2\n", 2, "bad key: a key is letters"),
    (f"A=1\n{TOKEN} x=1\n", 2, "the line is not shown"),
    (f"A=1\n\nB='{TOKEN}\n", 3, "the value of B has an unclosed quote"),
])
def test_a_bad_env_file_names_its_line_never_its_value(tmp_path: Path, text: str, line: int,
                                                        words: str) -> None:
    path = tmp_path / "a.env"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        secrets.read_env_file(path)
    assert f"{path}:{line}:" in str(info.value)
    assert words in str(info.value)
    assert TOKEN not in str(info.value)


def test_environment_marks_and_hides_secrets(tmp_path: Path) -> None:
    path = tmp_path / "a.env"
    path.write_text(f"HF_TOKEN={TOKEN}\nMODE=file\n")
    env = secrets.environment({"MODE": "live", "KEY": "${SAF_T_KEY}"}, path,
                              source={"SAF_T_KEY": "k3y-from-env"})
    assert env.values == {"HF_TOKEN": TOKEN, "MODE": "live", "KEY": "k3y-from-env"}
    assert env.secret == {"HF_TOKEN", "KEY"}  # MODE written in saf.toml is not a secret
    assert env.shown() == {"HF_TOKEN": "***", "MODE": "live", "KEY": "***"}
    assert secrets.redact(f"token={TOKEN} key=k3y-from-env mode=live") == \
        "token=*** key=*** mode=live"
    with pytest.raises(KeyError):
        secrets.environment({"X": "${SAF_T_UNSET}"}, source={})


def test_a_short_value_is_not_hidden_in_free_text() -> None:
    """WORKERS=4 in an env_file must not turn every 4 saf prints into ***."""
    secrets.register(["4", "true", "12345"])
    assert secrets.redact("port 8040, 4 workers, true") == "port 8040, 4 workers, true"
    env = secrets.Environment({"WORKERS": "4"}, frozenset({"WORKERS"}))
    assert env.shown() == {"WORKERS": "***"}


def test_scrub_reaches_inside_events() -> None:
    secrets.register([TOKEN])
    event = StepOutput(step=0, node="a", stream="stdout", line=f"got {TOKEN}!")
    assert secrets.scrub(event).line == "got ***!"
    assert secrets.scrub({"tail": [TOKEN], "n": 1}) == {"tail": ["***"], "n": 1}


def test_env_file_text_quotes_for_systemd_and_sh(tmp_path: Path) -> None:
    import subprocess

    env = secrets.Environment({"A": 'x "y" $HOME `id` \\ z', "B": TOKEN}, frozenset({"B"}))
    text = secrets.env_file_text(env)
    path = tmp_path / "env"
    path.write_text(text)
    done = subprocess.run(["sh", "-c", f'set -a; . "{path}"; printf "%s|%s" "$A" "$B"'],
                          capture_output=True, text=True, check=True)
    assert done.stdout == f'x "y" $HOME `id` \\ z|{TOKEN}'
    with pytest.raises(ValueError, match="the value of A holds a line break") as info:
        secrets.env_file_text(secrets.Environment({"A": f"{TOKEN}\nx"}))
    assert TOKEN not in str(info.value)


def test_a_planted_token_is_nowhere_saf_writes(asyncssh_cluster, tmp_path: Path) -> None:
    (tmp_path / "secret.env").write_text(f"# the publisher's token\nHF_TOKEN={TOKEN}\n")
    inventory = tmp_path / "saf.toml"
    inventory.write_text(asyncssh_cluster.inventory.read_text() + """
[[services]]
name = "publisher"
on = "alpha"
command = "python3 publish.py"
env_file = "secret.env"
""")
    recipe = tmp_path / "leak.toml"
    recipe.write_text("""
name = "leak"
[vars]
token = { description = "what to print" }

[[steps]]
name = "print it"
run = "echo the token is {token}; echo {token} >&2"

[[steps]]
name = "send the env file"
kind = "upload"
src = "secret.env"
dest = "@REMOTE@/{node.name}.env"
mode = "0600"

[[steps]]
name = "read it on the node"
run = "cat @REMOTE@/{node.name}.env; stat -c %a @REMOTE@/{node.name}.env"

[[steps]]
name = "fail with it"
run = "echo last words {token}; exit 3"
""".replace("@REMOTE@", str(tmp_path / "remote")))
    (tmp_path / "remote").mkdir()
    state = tmp_path / "state"
    outputs = []
    for extra in ([], ["--json"], ["--check"]):
        done = asyncssh_cluster.saf("run", str(recipe), "--on", "alpha", "--var",
                                    f"token={TOKEN}", *extra, SAF_INVENTORY=str(inventory),
                                    SAF_STATE_DIR=str(state), SAF_CONFIG_DIR=str(state / "c"))
        assert done.returncode in (1, 0), done.stderr
        outputs += [done.stdout, done.stderr]
    printed = "\n".join(outputs)
    assert TOKEN not in printed
    assert "the token is ***" in printed
    assert "last words ***" in printed
    assert "HF_TOKEN=***" in printed  # read back from the node's own 0600 copy
    assert "600" in printed
    files = [p for p in state.rglob("*") if p.is_file()]
    assert any(p.suffix == ".jsonl" for p in files)
    for path in files:
        assert TOKEN.encode() not in path.read_bytes(), path
    log = next(p for p in files if p.suffix == ".jsonl").read_text()
    assert "***" in log


def test_the_env_file_is_not_needed_to_show_things(tmp_path: Path) -> None:
    """A command that only shows things loads an inventory whose env_file is not there."""
    from saf.inventory import load_inventory

    path = tmp_path / "saf.toml"
    path.write_text('[[nodes]]\nname = "a"\nhost = "h"\n[[services]]\nname = "s"\non = "a"\n'
                    'command = "x"\nenv_file = "gone.env"\n')
    assert load_inventory(path).file is not None
    assert os.stat(path).st_mode & stat.S_IRUSR


def test_every_headless_view_hides_secrets(capsys) -> None:
    """saf.render's console and JSON lines (saf exec, saf models, saf runs...) print through
    one gate."""
    from saf.render.console import console, print_json_line

    secrets.register([TOKEN])
    console().print(f"out {TOKEN}")
    console(stderr=True).print(f"err {TOKEN}")
    print_json_line({"line": f"json {TOKEN}"})
    out, err = capsys.readouterr()
    assert TOKEN not in out + err
    assert "out ***" in out
    assert '"json ***"' in out
    assert "err ***" in err
