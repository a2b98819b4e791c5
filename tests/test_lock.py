"""The installs are reproducible: constraints.txt pins every distribution saf and its tests
need, the README's two commands and .ci/run install through it, and the suite runs on it.

`.ci/newest` runs this suite on the newest releases instead; it sets SAF_NEWEST=1, and only the
check that the running environment *is* the lock steps aside there.
"""

from __future__ import annotations

import os
import re
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
COMMAND = re.compile(r"^python3 -m venv .*$", re.M)


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not NAME==VERSION"
            pins[canonicalize_name(name)] = version
    return pins


def _needed(name: str, extras: frozenset[str], seen: dict[str, frozenset[str]]) -> None:
    """Every distribution `name[extras]` pulls in, as installed here (markers evaluated)."""
    key = canonicalize_name(name)
    if key in seen and extras <= seen[key]:
        return
    seen[key] = seen.get(key, frozenset()) | extras
    for text in metadata.requires(name) or []:
        req = Requirement(text)
        envs = [dict(default_environment(), extra=e) for e in (extras or {""})]
        if req.marker is None or any(req.marker.evaluate(env) for env in envs):
            _needed(req.name, frozenset(req.extras), seen)


def test_the_lock_pins_every_distribution_saf_and_its_tests_need():
    seen: dict[str, frozenset[str]] = {}
    _needed("saf", frozenset({"test"}), seen)
    del seen["saf"]
    missing = sorted(set(seen) - set(_pins()))
    assert missing == [], "not in constraints.txt (run .ci/newest --lock): " + ", ".join(missing)


def test_the_suite_runs_on_the_locked_versions():
    if os.environ.get("SAF_NEWEST"):
        pytest.skip(".ci/newest runs the suite on the newest releases, not the lock")
    pins = _pins()
    off = {name: (metadata.version(name), version) for name, version in pins.items()
           if _installed(name) and metadata.version(name) != version}
    assert off == {}, "installed (found, locked); reinstall with pip -c constraints.txt"


def _installed(name: str) -> bool:
    try:
        metadata.version(name)
    except metadata.PackageNotFoundError:
        return False
    return True


def test_the_readmes_commands_and_ci_install_through_the_lock():
    demo, tests = COMMAND.findall((ROOT / "README.md").read_text())[:2]
    assert "pip install -c constraints.txt . " in demo
    assert "pip install -c constraints.txt -e '.[test]' " in tests
    ci = (ROOT / ".ci" / "run").read_text()
    assert tests.replace("pip install ", "pip install -q ") in ci
