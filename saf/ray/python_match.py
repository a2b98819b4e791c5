"""Python matching for Ray: Ray joins a node only when its Python (to the patch version) and
its Ray version are the head's. From every node's facts (saf.ray.facts: the Python its
configured interpreter runs, its Ray, pyenv's and uv's versions, OS and arch) this decides
the target, prints the matrix with the odd ones marked, and writes the exact commands that
make a node match: the Python by pyenv (`pyenv install -s X.Y.Z`) when the node has pyenv or
it is asked for, else by uv (`uv python install X.Y.Z`, uv installed first by its documented
installer when missing); a venv at the inventory's path; `ray[default]==<head's>` pinned."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from saf.inventory.model import Node
from saf.ray.facts import NodeFacts
from saf.shell import path_arg, program, program_argv


def _installer(url: str, shell: str) -> str:
    """A documented `curl URL | sh` installer, downloaded to a file first: piped, a failed
    download (no internet: `curl: (6) Could not resolve host`) ran an empty script that
    "succeeded", and the next command failed as `uv: not found`. Now curl's own error is the
    step's."""
    return (f"saf_get=$(mktemp) && {{ curl -LsSf {url} -o \"$saf_get\" && {shell} \"$saf_get\"; "
            "saf_rc=$?; rm -f \"$saf_get\"; exit $saf_rc; }")


UV_INSTALLER = _installer("https://astral.sh/uv/install.sh", "sh")
PYENV_INSTALLER = _installer("https://pyenv.run", "bash")
DEFAULT_VENV = "~/.saf/venv"  # python-venv's too: one venv a node, whichever recipe made it


@dataclass(frozen=True)
class Target:
    python: str
    ray: str
    source: str  # "the head alpha" or "--var python"


def target_of(head: Node, head_facts: NodeFacts | None, python: str, ray: str
              ) -> tuple[Target | None, str | None]:
    """The version every node must run: the recipe's `python`/`ray` vars, else the head's."""
    # A head whose python is not made yet (a fresh node) answers with python3's facts: its
    # Python is the target (Debian's 3.11.2, say); its Ray, if python3 has one.
    want_py = python or (head_facts.python if head_facts else None)
    want_ray = ray or (head_facts.ray if head_facts else None)
    if not want_py:
        return None, f"the head {head.name}'s Python did not answer; pass --var python=X.Y.Z"
    parts = want_py.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return None, f"python must be a full version X.Y.Z, not {want_py!r}"
    if not want_ray:
        where = (f"python3 ({head.python} is not made yet)" if head_facts and head_facts.fallback
                 else head.python)
        return None, (f"the head {head.name} has no Ray in {where}; pass --var ray=X.Y.Z "
                      "(or install it on the head first)")
    source = "--var python" if python else f"the head {head.name}"
    return Target(want_py, want_ray, source), None


def matches(facts: NodeFacts, target: Target) -> bool:
    return (not facts.fallback and facts.python == target.python and facts.ray == target.ray
            and not facts.ray_missing)


def matrix(rows: list[tuple[str, NodeFacts | str]], target: Target | None) -> list[str]:
    """The matrix as lines: node, Python now, Ray now, OS/arch, tools, and what changes;
    odd ones out marked with `!`."""
    header = f"  {'NODE':<12} {'PYTHON':<9} {'RAY':<9} {'OS/ARCH':<14} {'TOOLS':<12} CHANGE"
    lines = [header]
    for name, facts in rows:
        if isinstance(facts, str):
            lines.append(f"! {name:<12} {'?':<9} {'?':<9} {'?':<14} {'':<12} {facts}")
            continue
        python = (facts.python or "?") + ("*" if facts.fallback else "")
        tools = ",".join(t for t, v in (("pyenv", facts.pyenv_bin), ("uv", facts.uv_bin))
                         if v) or "-"
        if target is None:
            change, odd = "", False
        elif matches(facts, target):
            change, odd = "none", False
        else:
            odd = True
            want = []
            if facts.python != target.python:
                want.append(f"Python {python} -> {target.python}")
            elif facts.fallback or not facts.venv:
                want.append(f"venv of Python {target.python}")
            if facts.ray != target.ray:
                want.append(f"Ray {facts.ray or 'none'} -> {target.ray}")
            elif facts.ray_missing:
                want.append(f"ray[default] (lacks {', '.join(sorted(facts.ray_missing))})")
            change = ", ".join(want) or "venv"
        lines.append(f"{'!' if odd else ' '} {name:<12} {python:<9} {facts.ray or 'none':<9} "
                     f"{facts.os_arch:<14} {tools:<12} {change}")
    if any(not isinstance(f, str) and f.fallback for _, f in rows):
        lines.append("  * python3's: the inventory's python is not made yet")
    if target is not None:
        lines.append(f"  target: Python {target.python}, Ray {target.ray} ({target.source})")
    return lines


def venv_of(node: Node, facts: NodeFacts, default: str) -> tuple[str, bool]:
    """Where the node's venv goes, and whether the inventory's `python` lives in it. The
    inventory's python inside a venv (`~/.saf/venv/bin/python`): that venv. Else
    `vars.venv`, else the recipe's default. A python given as a command with arguments
    (`/usr/bin/env ~/v/bin/python`) is not a venv's path: the venv is made elsewhere and the
    note says which python to name."""
    words = program_argv(node.python)
    python = words[0] if len(words) == 1 else ""
    if "/bin/" in python and (facts.fallback or facts.venv):
        return python.rsplit("/bin/", 1)[0], True
    venv = node.vars.get("venv")
    return (venv if isinstance(venv, str) and venv else default), False


_path = path_arg


def fix_commands(node: Node, facts: NodeFacts, target: Target, *, tool: str = "",
                 venv_default: str = DEFAULT_VENV, packages: str = "") -> tuple[list[str], str]:
    """The commands that make `node` run the target Python and Ray, and the venv's python
    (the node's python for later steps)."""
    pin = shlex.quote(f"ray[default]=={target.ray}")
    extra = " ".join(shlex.quote(p) for p in packages.split())
    install = f" -m pip install --quiet {pin}" + (f" {extra}" if extra else "")
    venv, in_inventory = venv_of(node, facts, venv_default)
    vpython = f"{venv.rstrip('/')}/bin/python"
    if not facts.fallback and facts.python == target.python and facts.venv:
        # The right Python already, in a venv: only Ray differs.
        return [f"{program(node.python)}{install}"], vpython if in_inventory else node.python
    commands: list[str] = []
    use_pyenv = tool == "pyenv" or (tool == "" and bool(facts.pyenv_bin))
    if facts.python == target.python:
        # The exact Python is there already (python3 on a fresh node, or the inventory's
        # outside a venv): make the venv with it, install nothing.
        base = program(facts.executable or ("python3" if facts.fallback else node.python))
    elif use_pyenv:
        pyenv = shlex.quote(facts.pyenv_bin) if facts.pyenv_bin else "pyenv"
        if not facts.pyenv_bin:
            commands.append(PYENV_INSTALLER)
            pyenv = '"$HOME"/.pyenv/bin/pyenv'
        commands.append(f"{pyenv} install -s {target.python}")
        base = f'"$({pyenv} root)"/versions/{target.python}/bin/python3'
    else:
        uv = shlex.quote(facts.uv_bin) if facts.uv_bin else '"$HOME"/.local/bin/uv'
        if not facts.uv_bin:
            commands.append(UV_INSTALLER)
        commands.append(f"{uv} python install {target.python}")
        base = f'"$({uv} python find {target.python})"'
    folder = _path(venv.rstrip("/"))
    # A venv of another Python is moved aside, never deleted.
    commands.append(f"if [ -e {folder} ]; then mv {folder} {folder}.saf-old-$(date +%s); fi")
    commands.append(f"{base} -m venv {folder}")
    commands.append(f"{_path(vpython)}{install}")
    return commands, vpython
