"""Benchmark: the same three-step recipe on 20 nodes by saf, ansible-playbook and pyinfra.

The nodes are 20 aliases of one OpenSSH sshd on loopback. The steps: a command, a file upload
(256 KiB), and a command with a check (skipped when its file exists). Each tool runs it twice
on a clean folder: a first run (everything changes) and a rerun (the upload and the checked
step have nothing to do). Wall time includes each tool's own start-up.

ansible-core and pyinfra are not saf dependencies; install them into a separate venv:

    python3 -m venv /tmp/bench-venv && /tmp/bench-venv/bin/pip install ansible-core pyinfra
    python tests/perf/bench_recipes.py [--tools /tmp/bench-venv/bin] [--nodes 20]

sshd's MaxStartups and MaxSessions are raised (100) so that ansible with forks=20 and pyinfra
(which open every connection at once) are not refused by OpenSSH's defaults; saf keeps under
them by itself. Ansible runs with `gather_facts: false` so every tool does the same work.
"""

from __future__ import annotations

import argparse
import getpass
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.helpers.servers import SSHD, ClientKeys, OpenSSHServer, write_inventory  # noqa: E402

SAF_RECIPE = """\
name = "bench"
[vars]
dir = "{dir}"

[[steps]]
name = "command"
run = "mkdir -p {{dir}}/{{node.name}} && echo hello from {{node.name}} > {{dir}}/{{node.name}}/hello"

[[steps]]
name = "upload"
kind = "upload"
src = "{payload}"
dest = "{{dir}}/{{node.name}}/payload.bin"

[[steps]]
name = "checked command"
check = "test -f {{dir}}/{{node.name}}/done"
run = "date > {{dir}}/{{node.name}}/done"
"""  # noqa: E501 - a recipe's command line, kept whole

PLAYBOOK = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: command
      shell: "mkdir -p {dir}/{{{{ inventory_hostname }}}} && echo hello from {{{{ inventory_hostname }}}} > {dir}/{{{{ inventory_hostname }}}}/hello"
    - name: upload
      copy:
        src: "{payload}"
        dest: "{dir}/{{{{ inventory_hostname }}}}/payload.bin"
    - name: checked command
      shell: "date > {dir}/{{{{ inventory_hostname }}}}/done"
      args:
        creates: "{dir}/{{{{ inventory_hostname }}}}/done"
"""  # noqa: E501 - a playbook's command line, kept whole

PYINFRA_DEPLOY = """\
from pyinfra import host
from pyinfra.operations import files, server

d = "{dir}/" + host.name
server.shell(name="command",
             commands=[f"mkdir -p {{d}} && echo hello from {{host.name}} > {{d}}/hello"])
files.put(name="upload", src="{payload}", dest=f"{{d}}/payload.bin")
server.shell(name="checked command", commands=[f"test -f {{d}}/done || date > {{d}}/done"])
"""


def timed(cmd: list[str], env: dict[str, str],
          cwd: Path) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    result = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=900)
    return time.perf_counter() - start, result


def check(result: subprocess.CompletedProcess[str], what: str) -> None:
    if result.returncode != 0:
        sys.exit(f"{what} failed ({result.returncode}):\n{result.stdout[-3000:]}\n"
                 f"{result.stderr[-3000:]}")


def verify(folder: Path, names: list[str], what: str) -> None:
    for name in names:
        for file in ("hello", "payload.bin", "done"):
            if not (folder / name / file).is_file():
                sys.exit(f"{what}: {folder / name / file} is missing")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--tools", default="/tmp/bench-venv/bin",
                        help="folder with ansible-playbook and pyinfra")
    args = parser.parse_args()
    if not SSHD:
        sys.exit("OpenSSH sshd is not installed")
    work = Path(tempfile.mkdtemp(prefix="saf-bench-"))
    keys = ClientKeys(work / "keys")
    server = OpenSSHServer(work / "sshd", keys,
                           extra_config="MaxStartups 100:30:200\nMaxSessions 100\n")
    names = [f"n{i:02d}" for i in range(1, args.nodes + 1)]
    payload = work / "payload.bin"
    payload.write_bytes(os.urandom(256 * 1024))
    user = getpass.getuser()
    env = dict(os.environ, ANSIBLE_HOST_KEY_CHECKING="True", ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCAL_TEMP=str(work / "ansible-tmp"), PYTHONUNBUFFERED="1")
    times: dict[str, list[float]] = {}
    try:
        # saf
        inv = write_inventory(work / "saf.toml", keys, [
            {"name": n, "host": "127.0.0.1", "port": server.port} for n in names])
        target = work / "out-saf"
        recipe = work / "bench.toml"
        recipe.write_text(SAF_RECIPE.format(dir=target, payload=payload))
        saf_env = dict(env, SAF_INVENTORY=str(inv), SAF_STATE_DIR=str(work / "saf-state"))
        for label in ("first", "rerun"):
            elapsed, result = timed([sys.executable, "-m", "saf", "run", str(recipe)], saf_env,
                                    ROOT)
            check(result, f"saf ({label})")
            times.setdefault("saf", []).append(elapsed)
        verify(target, names, "saf")

        tools = Path(args.tools)
        playbook_bin = tools / "ansible-playbook"
        if playbook_bin.exists():
            ssh_args = (f"-o UserKnownHostsFile={keys.known_hosts} -o StrictHostKeyChecking=yes "
                        f"-F {keys.ssh_config} -o ControlMaster=auto -o ControlPersist=60s")
            hosts = "\n".join(
                f"{n} ansible_host=127.0.0.1 ansible_port={server.port} ansible_user={user} "
                f"ansible_ssh_private_key_file={keys.identity} "
                f"ansible_python_interpreter=/usr/bin/python3" for n in names)
            (work / "hosts.ini").write_text("[all]\n" + hosts + "\n")
            for forks in (None, 20):
                label = "ansible" if forks is None else f"ansible forks={forks}"
                target = work / f"out-ansible-{forks or 'default'}"
                (work / "play.yml").write_text(PLAYBOOK.format(dir=target, payload=payload))
                a_env = dict(env, ANSIBLE_SSH_ARGS=ssh_args)
                cmd = [str(playbook_bin), "-i", str(work / "hosts.ini"), str(work / "play.yml")]
                if forks:
                    cmd += ["--forks", str(forks)]
                for run in ("first", "rerun"):
                    elapsed, result = timed(cmd, a_env, work)
                    check(result, f"{label} ({run})")
                    times.setdefault(label, []).append(elapsed)
                verify(target, names, label)
        else:
            print(f"ansible-playbook not found in {tools}; skipped")

        pyinfra_bin = tools / "pyinfra"
        if pyinfra_bin.exists():
            target = work / "out-pyinfra"
            hosts = ",\n".join(
                f'("{n}", {{"ssh_hostname": "127.0.0.1", "ssh_port": {server.port}, '
                f'"ssh_user": "{user}", "ssh_key": "{keys.identity}", '
                f'"ssh_known_hosts_file": "{keys.known_hosts}", '
                f'"ssh_strict_host_key_checking": "yes"}})' for n in names)
            (work / "inventory.py").write_text(f"hosts = [\n{hosts}\n]\n")
            (work / "deploy.py").write_text(PYINFRA_DEPLOY.format(dir=target, payload=payload))
            for run in ("first", "rerun"):
                elapsed, result = timed([str(pyinfra_bin), "-y", "inventory.py", "deploy.py"],
                                        env, work)
                check(result, f"pyinfra ({run})")
                times.setdefault("pyinfra", []).append(elapsed)
            verify(target, names, "pyinfra")
        else:
            print(f"pyinfra not found in {tools}; skipped")
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    saf_first, saf_rerun = times["saf"]
    print(f"\nthree-step recipe on {args.nodes} nodes (aliases of one loopback sshd)")
    print(f"{'tool':<20} {'first run':>10} {'rerun':>10} {'saf is (first)':>15} "
          f"{'saf is (rerun)':>15}")
    for tool, (first, rerun) in times.items():
        ratio = "" if tool == "saf" else f"{first / saf_first:13.1f}x {rerun / saf_rerun:14.1f}x"
        print(f"{tool:<20} {first:9.2f}s {rerun:9.2f}s {ratio}")
    print("(ratio: the tool's wall time / saf's; above 1 means saf is faster)")


if __name__ == "__main__":
    main()
