"""saf.cluster.service.differences names what of an installed unit, plist or supervisor
record differs from the one saf would write: the files compared are the ones saf's own
renderers write (systemd, launchd, the supervisor's spec.json), as they sit on a node."""

from __future__ import annotations

import dataclasses

import pytest

from saf.cluster.initsys import InitFacts, Manager, ManagerKind, ServiceStatus
from saf.cluster.service import Found, differences, rendered
from saf.cluster.units import ServiceSpec

SPEC = ServiceSpec(name="beat", argv=("/usr/bin/python3", "/opt/beat.py"),
                   env={"MODE": "one", "SAF_SECRETS_DIGEST": "0123456789abcdef"},
                   env_file="/home/op/.saf/env/beat.env", restart="always")
KINDS: tuple[ManagerKind, ...] = ("systemd", "systemd-user", "launchd-daemon",
                                  "launchd-agent", "detached")


def _found(kind: ManagerKind, spec: ServiceSpec) -> Found:
    init = "systemd" if kind.startswith("systemd") else "launchd" if kind.startswith(
        "launchd") else "none"
    manager = Manager(kind, InitFacts(init, 0 if kind in ("systemd", "launchd-daemon")
                                      else 1000, "op", "/home/op"))
    return Found(manager, rendered(spec, manager),
                 ServiceStatus("beat", kind, "active", active=True))


@pytest.mark.parametrize("kind", KINDS)
def test_each_changed_field_is_named(kind: ManagerKind) -> None:
    found = _found(kind, SPEC)
    assert differences(SPEC, found) == []
    cases = {
        "command": dataclasses.replace(SPEC, argv=(*SPEC.argv, "--louder")),
        "env": dataclasses.replace(SPEC, env={**SPEC.env, "MODE": "two"}),
        "restart": dataclasses.replace(SPEC, restart="on-failure"),
    }
    for name, changed in cases.items():
        assert differences(changed, found) == [name], (kind, name)
    secret = dataclasses.replace(SPEC, env={**SPEC.env, "SAF_SECRETS_DIGEST": "fedcba9876543210"})
    assert differences(secret, found) == ["env"]
    both = dataclasses.replace(cases["command"], restart="no")
    assert differences(both, found) == ["command", "restart"]
    workdir = dataclasses.replace(SPEC, workdir="/srv")
    assert differences(workdir, found) == ["settings"]


def test_nothing_installed_differs_in_nothing() -> None:
    found = dataclasses.replace(_found("systemd", SPEC), installed=None)
    assert differences(SPEC, found) == []
