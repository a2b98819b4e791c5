"""Units and plists saf writes for a service, checked by the real tools that run here: every
systemd unit by `systemd-analyze verify` (which parses it as systemd does, no booted systemd
needed), every plist by a plistlib round trip with the keys launchd reads, and the secrets
file by a real sh."""

from __future__ import annotations

import os
import plistlib
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from saf.cluster.units import (
    ServiceSpec,
    UnitError,
    env_file_text,
    render_launchd,
    render_systemd,
)

ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")

HOSTILE = "a b 'c' \"d\" $HOME ${X} 100% %n \\ back`tick`;|&"
BASE = ServiceSpec("beat", (sys.executable, "-c", "print(1)", HOSTILE), workdir="/tmp/with space",
                   env={"MODE": HOSTILE}, env_file="/etc/saf/beat 1.env")


def verify(tmp_path: Path, text: str, *, user: bool = False,
           name: str = "saf-beat.service") -> subprocess.CompletedProcess[str]:
    unit = tmp_path / name
    unit.write_text(text)
    env = dict(os.environ)
    args = [ANALYZE or "systemd-analyze", "verify", str(unit)]
    if user:  # a user manager wants a runtime folder of its own
        runtime = tmp_path / "runtime"
        runtime.mkdir(mode=0o700, exist_ok=True)
        env["XDG_RUNTIME_DIR"] = str(runtime)
        args.insert(1, "--user")
    return subprocess.run(args, capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=60)


VARIANTS = {
    "always": replace(BASE, restart="always"),
    "on-failure-numa": replace(BASE, numa=0, gpus="0,1"),
    "no-cpus-user": replace(BASE, restart="no", cpus="0,1-1", user="root"),
    "bare": ServiceSpec("bare", (sys.executable,)),
}


@needs_analyze
@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("system", [True, False])
def test_every_rendered_unit_passes_systemd_analyze_verify(tmp_path, variant, system) -> None:
    spec = VARIANTS[variant]
    if spec.user and not system:
        with pytest.raises(UnitError, match="needs a system unit"):
            render_systemd(spec, system=system)
        return
    text = render_systemd(spec, system=system)
    done = verify(tmp_path, text, user=not system, name=spec.unit)
    assert done.returncode == 0, done.stdout + done.stderr
    # No warning about this unit either (an unknown key is only a warning, exit 0).
    assert spec.unit not in done.stdout + done.stderr, done.stdout + done.stderr
    assert ("WantedBy=multi-user.target" if system else "WantedBy=default.target") in text
    assert f"Restart={spec.restart}" in text


@needs_analyze
def test_verify_catches_a_broken_unit(tmp_path) -> None:
    """The check is real: a program that is not there fails verify, as the recording of
    systemd issue 6306 shows (`Command ... is not executable`)."""
    spec = replace(BASE, argv=("/nonexistent/saf-test/prog", "x"))
    done = verify(tmp_path, render_systemd(spec, system=True))
    assert done.returncode != 0
    assert "Command /nonexistent/saf-test/prog is not executable" in done.stdout + done.stderr


@needs_analyze
@pytest.mark.parametrize("program", ["/tmp/no such/prog", "/tmp/p100%n", "/tmp/p$HOME"])
def test_the_program_name_reaches_systemd_as_written(tmp_path, program) -> None:
    """systemd's own reading of ExecStart= is shown in its verify error for a missing
    program: spaces, `%` and `$` arrive unchanged."""
    done = verify(tmp_path, render_systemd(replace(BASE, argv=(program,)), system=True))
    assert f"Command {program} is not executable" in done.stdout + done.stderr, done.stderr


def test_arguments_are_quoted_for_systemd() -> None:
    text = render_systemd(BASE, system=True)
    (line,) = [x for x in text.splitlines() if x.startswith("ExecStart=")]
    # `$` doubled (no expansion), `%` doubled (no specifier), quotes and backslashes escaped.
    assert line.endswith('"a b \'c\' \\"d\\" $$HOME $${X} 100%% %%n \\\\ back`tick`;|&"')
    assert 'Environment="MODE=a b \'c\' \\"d\\" $HOME ${X} 100%% %%n \\\\ back`tick`;|&"' in text
    assert "EnvironmentFile=/etc/saf/beat 1.env" in text


@pytest.mark.parametrize(("change", "key"), [
    ({"env": {"A": "one\ntwo"}}, "env A"),
    ({"argv": (sys.executable, "x\ny")}, "command argument 2"),
    ({"argv": ("python3",)}, "absolute path"),
    ({"argv": ('/tmp/a"b',)}, "quote or a backslash"),
    ({"workdir": "rel/dir"}, "workdir"),
    ({"env": {"A-B": "x"}}, "not a variable name"),
    ({"name": "Bad Name"}, "service name"),
    ({"cpus": "0-3; rm"}, "cpus"),
    ({"user": "root\nExecStartPre=/bin/evil"}, "user"),
    ({"description": "x\n[Service]"}, "description"),
])
def test_hostile_values_are_refused_naming_the_key(change, key) -> None:
    spec = replace(BASE, **change)
    with pytest.raises(UnitError, match=key.replace("(", r"\(")):
        render_systemd(spec, system=True)
    with pytest.raises(UnitError):
        render_launchd(spec, daemon=True, home="/Users/me")


@pytest.mark.parametrize(("restart", "keep"), [
    ("always", True), ("on-failure", {"SuccessfulExit": False}), ("no", False)])
def test_plist_round_trips_with_the_keys_launchd_reads(restart, keep) -> None:
    spec = replace(BASE, restart=restart, gpus="0", gpu_env="MLX_DEVICES")
    job = plistlib.loads(render_launchd(spec, daemon=False, home="/Users/me"))
    assert job["Label"] == "saf-beat"
    assert job["KeepAlive"] == keep
    assert job["RunAtLoad"] is True
    assert job["WorkingDirectory"] == "/tmp/with space"
    assert job["EnvironmentVariables"] == {"MODE": HOSTILE, "MLX_DEVICES": "0"}
    assert job["StandardOutPath"] == "/Users/me/Library/Logs/saf/saf-beat.log"
    assert job["StandardErrorPath"] == job["StandardOutPath"]
    # The secrets file is read by sh, then the program runs with its own argv unchanged.
    assert job["ProgramArguments"][:4] == ["/bin/sh", "-c", job["ProgramArguments"][2],
                                           "/etc/saf/beat 1.env"]
    assert job["ProgramArguments"][4:] == list(spec.argv)
    assert "UserName" not in job


def test_plist_shim_runs_the_program_with_the_secrets(tmp_path) -> None:
    """The launchd job's argv, run by a real sh: the secrets file's values arrive exactly and
    every argument reaches the program unchanged."""
    secrets = tmp_path / "s.env"
    secrets.write_text(env_file_text({"HF_TOKEN": HOSTILE}))
    spec = replace(BASE, env_file=str(secrets),
                   argv=(sys.executable, "-c", "import os, sys; print(repr(sys.argv[1:]));"
                         "print(repr(os.environ['HF_TOKEN']))", HOSTILE, ""))
    job = plistlib.loads(render_launchd(spec, daemon=True, home="/var/root"))
    out = subprocess.run(job["ProgramArguments"], capture_output=True, text=True, timeout=30,
                         env={"PATH": os.environ["PATH"]})
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [repr([HOSTILE, ""]), repr(HOSTILE)]


def test_launch_agent_refuses_what_it_cannot_do() -> None:
    with pytest.raises(UnitError, match="needs a LaunchDaemon"):
        render_launchd(replace(BASE, user="ray"), daemon=False, home="/Users/me")
    with pytest.raises(UnitError, match="no CPU or NUMA pinning"):
        render_launchd(replace(BASE, cpus="0-3"), daemon=True, home="/var/root")
    job = plistlib.loads(render_launchd(replace(BASE, user="ray"), daemon=True,
                                        home="/var/root"))
    assert job["UserName"] == "ray"
    assert job["StandardOutPath"] == "/Library/Logs/saf/saf-beat.log"


def test_env_file_refuses_a_newline() -> None:
    with pytest.raises(UnitError, match="HF_TOKEN"):
        env_file_text({"HF_TOKEN": "a\nb"})
