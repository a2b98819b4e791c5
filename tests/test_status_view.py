"""saf status's verdicts, JSON and tables, on a fixed view (the Cluster screen's snapshot
data): the verdict rules, the exit rule, a secret never shown, and every table at 80
columns with its verdict column kept."""

from __future__ import annotations

import dataclasses
import json

import pytest
from rich.console import Console

from saf import secrets
from saf.render.status_view import status_view
from saf.up.status import VERDICTS, ClusterStatus, Judged, ray_verdict, service_verdict
from tests.snapshot_apps._cluster import recorded_status


@pytest.fixture(autouse=True)
def no_secrets():
    secrets.forget_all()
    yield
    secrets.forget_all()


def test_ray_verdicts():
    assert ray_verdict({"GPU": 2}, {"GPU": 2, "CPU": 8}, "") == Judged("as declared")
    assert ray_verdict({"GPU": 2}, {"GPU": 1}, "") == Judged("differs", "GPU 1 (declared 2)")
    assert ray_verdict({}, None, "") == Judged("missing", "no ALIVE Ray node")
    assert ray_verdict({}, None, "Ray is not running") == Judged("down", "Ray is not running")
    # persist = true: kept by service saf-ray, by saf's supervisor, or by nothing saf put.
    assert ray_verdict({}, {"CPU": 8}, "", True, True) == Judged("as declared")
    assert ray_verdict({}, {"CPU": 8}, "", True, False).verdict == "not kept across reboots"
    assert ray_verdict({}, {"CPU": 8}, "", True, None).why.startswith(
        "persist = true, but no service saf-ray keeps it")
    assert ray_verdict({}, {"CPU": 8}, "", True, False, disabled=True) == Judged(
        "differs", "saf-ray is disabled: it will not start at boot (saf up enables it)")


def test_service_verdicts():
    assert service_verdict("absent", False, True, None).verdict == "missing"
    assert service_verdict("failed", False, True, None) == Judged("down", "failed")
    assert service_verdict("active", True, True, "failed (exit 1)") == Judged(
        "differs", "check failed (exit 1)")
    assert service_verdict("active", True, False, "ok").verdict == "not kept across reboots"
    assert service_verdict("active", True, True, None).verdict == "as declared"
    # Installed, running, but not enabled: it would not start at boot.
    assert service_verdict("active", True, False, "ok", disabled=True) == Judged(
        "differs", "disabled: it will not start at boot (saf up enables it)")
    assert service_verdict("active", True, False, "failed (exit 1)", disabled=True) == Judged(
        "differs", "check failed (exit 1)")


def test_only_as_declared_and_not_kept_pass():
    fine = ClusterStatus("c", services=[dataclasses.replace(
        recorded_status().services[1])])  # running, not kept across reboots
    assert fine.as_declared
    assert not recorded_status().as_declared
    assert set(recorded_status().counts()) <= set(VERDICTS)


def test_json_has_the_documented_fields():
    data = json.loads(json.dumps(recorded_status().to_json()))
    assert set(data) == {"cluster", "as_declared", "counts", "nodes", "ray", "services",
                         "models"}
    assert set(data["ray"]) == {"declared", "problem", "nodes"}
    assert set(data["services"][0]) == {
        "service", "node", "state", "manager", "restarts", "since", "pid",
        "kept_across_reboots", "check", "verdict", "why"}
    assert set(data["models"][0]) == {
        "model", "node", "port", "engine", "state", "answers", "restarts",
        "kept_across_reboots", "last_check", "verdict", "why", "moved_from"}
    assert data["counts"] == {"as declared": 5, "differs": 1, "down": 2,
                              "not kept across reboots": 1, "unreachable": 2}


def test_a_secret_is_scrubbed_from_every_row():
    """gather passes what it found through secrets.scrub: a token that reached a reason
    (a node's error, a check's command line) is *** in the JSON and the tables."""
    secrets.register(["hf_SECRETtoken123"])
    status = recorded_status()
    status.services[2] = dataclasses.replace(status.services[2], judged=Judged(
        "down", "failed: HF_TOKEN=hf_SECRETtoken123 rejected"))
    status.models[0] = dataclasses.replace(status.models[0],
                                           last_check={"why": "hf_SECRETtoken123"})
    scrubbed = secrets.scrub(status)
    text = json.dumps(scrubbed.to_json())
    assert "hf_SECRETtoken123" not in text
    assert "HF_TOKEN=***" in text
    console = Console(width=200, record=True)
    console.print(status_view(scrubbed, 200))
    assert "hf_SECRETtoken123" not in console.export_text()


def test_tables_fit_80_columns_and_keep_the_verdict():
    console = Console(width=80, record=True)
    console.print(status_view(recorded_status(), 80))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    for word in ("not kept across reboots", "unreachable", "differs", "publisher",
                 "llama-3b"):
        assert word in text
