"""Arbitrary and adversarial input at saf's boundaries (hypothesis): agent frames, the inventory
and recipes. Nothing raises past the boundary but the boundary's own error; every rejection is
one line naming the file (and line) or the field, with the reason; a frame that passes the gate
can be read by the store and the view model without error; and no state file changes."""

from __future__ import annotations

import json
import math
import os
import string
import typing
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from saf.agents.protocol import FRAME_FIELDS, FrameError, decode

from saf.errors import SafError
from saf.inventory import load_inventory
from saf.metrics.events import HelloReceived, SampleReceived
from saf.metrics.frames import RANGES
from saf.metrics.frames import check as check_frame
from saf.metrics.store import MetricsStore
from saf.metrics.view import node_view
from saf.recipe import load_recipe
from saf.tomlpos import MAX_DEPTH
from saf.up.declared import declared

REASONS = {"too_long", "truncated", "bad_json", "not_object", "unknown_type", "version",
           "bad_type", "out_of_range"}
FIELDS = ["cpu", "memory", "numa", "gpus", "nics", "disks", "percent", "per_core", "count",
          "total", "used", "util", "mem_used", "mem_total", "temp", "name", "rx_bytes",
          "rx_bps", "interval", "seq", "time", "missing", "processes", "pid", "load", "up"]
SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12))
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=5),
                            st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=5),
                                            inner, max_size=5)),
    max_leaves=40)
frames = st.fixed_dictionaries(
    {"type": st.sampled_from(["sample", "hello", "error", "reply"])},
    optional={"protocol": st.sampled_from([1, 1, 2, "1", None]),
              **{name: json_values for name in FIELDS}})


def _shaped(hint: Any, field: str) -> st.SearchStrategy[Any]:
    """Values of the protocol's declared type and range: frames a real agent could send."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union:
        return st.none() | _shaped(args[0], field)
    if origin is list:
        return st.lists(_shaped(args[0], field), max_size=4)
    if origin is dict:
        return st.dictionaries(st.sampled_from(FIELDS), _shaped(args[1], field), max_size=3)
    if typing.is_typeddict(hint):
        hints = typing.get_type_hints(hint)
        return st.fixed_dictionaries({}, optional={k: _shaped(v, k) for k, v in hints.items()})
    low, high = RANGES.get(field, (0.0, 1e15))
    if hint is int:
        return st.integers(math.ceil(low), int(high))
    if hint is float:
        return st.floats(low, high)
    if hint is bool:
        return st.booleans()
    if hint is str:
        return st.text(max_size=8)
    return json_values


shaped_frames = st.one_of(*(_shaped(cls, kind).map(lambda f, kind=kind: {**f, "type": kind,
                                                                         "protocol": 1})
                            for kind, cls in FRAME_FIELDS.items()))


def gate(line: str | bytes) -> dict | None:
    """What the agent link does with a line: the frame, or None for a counted bad frame."""
    try:
        frame = decode(line)
        check_frame(frame)
    except FrameError as exc:
        refused = exc
    else:
        return frame
    assert refused.reason in REASONS
    assert "\n" not in str(refused)
    return None


@SETTINGS
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300)))
def test_any_line_is_a_frame_or_a_counted_bad_one(line: bytes | str) -> None:
    gate(line)
    gate(line + ("\n" if isinstance(line, str) else b"\n"))


@SETTINGS
@given(st.one_of(frames, shaped_frames))
def test_a_frame_that_passes_the_gate_is_read_without_error(frame: dict) -> None:
    """The gate is the only check: whatever passes it (random shapes, and frames of the
    protocol's own shape, which mostly do), the store and the view model take."""
    line = json.dumps(frame, allow_nan=True) + "\n"
    passed = gate(line)
    if passed is None:
        return
    store = MetricsStore()
    store.add_node("n")
    if passed["type"] == "hello":
        store.apply(HelloReceived(node="n", frame=passed, raw=line, time=1.0))
    elif passed["type"] == "sample":
        store.apply(SampleReceived(node="n", frame=passed, raw=line, time=1.0))
    view = node_view(store, "n", 2.0)
    for value in (view.cpu, view.mem_used, *[g.util for g in view.gpus], *view.cores):
        assert value is None or math.isfinite(value)
    # The node screen's lazy parts are built without raising.
    assert isinstance(view.numa, tuple)
    assert isinstance(view.disks, tuple)
    assert all(isinstance(why, str) for why in view.missing.values())


def _one_line_naming(error: SafError, path: Path) -> None:
    text = str(error)
    assert "\n" not in text
    assert text.startswith(str(path)), text


toml_text = st.one_of(
    st.text(alphabet=string.printable, max_size=200),
    st.builds(lambda depth, key: f'[[nodes]]\nname = "a"\nhost = "h"\n{key} = '
              + "[" * depth + "]" * depth + "\n",
              st.integers(MAX_DEPTH - 2, 3000), st.sampled_from(["vars", "tags", "port"])),
    st.builds(lambda body, number: f'[[nodes]]\nname = "a"\nhost = "h"\n{body} = {number}\n',
              st.sampled_from(["port", "connect_timeout", "roles", "tags", "user", "os"]),
              st.sampled_from(["nan", "inf", "-inf", "-1", "0", "1e308", "65536", "'x'", "[]",
                               "true", "{}"])),
)


@SETTINGS
@given(toml_text)
def test_any_inventory_loads_or_is_one_line_naming_the_file(tmp_path_factory, text: str) -> None:
    folder = tmp_path_factory.mktemp("inv")
    path = folder / "saf.toml"
    path.write_text(text)
    before = {p: p.stat().st_mtime_ns for p in folder.iterdir()}
    refused: SafError | None = None
    try:
        load_inventory(path)
    except SafError as exc:
        refused = exc
    if refused is not None:
        _one_line_naming(refused, path)
        assert refused.exit_code == 2
    assert {p: p.stat().st_mtime_ns for p in folder.iterdir()} == before


declared_text = st.builds(
    lambda table, key, value: f'[[nodes]]\nname = "a"\nhost = "h"\nroles = ["head"]\n'
    f'{table}\n{key} = {value}\n',
    st.sampled_from(['[[services]]\nname = "s"\non = "a"\ncommand = "x"',
                     '[[models]]\nname = "m"\nmodel = "f"\nport = 80',
                     '[[models]]\nname = "m"\nmodel = "f"\non = "a"', '[ray]', '[up]',
                     '[[up.steps]]\nrecipe = "hello"']),
    st.sampled_from(["on", "after", "env", "env_file", "cpus", "numa", "gpus", "restart",
                     "check", "port", "placement", "replicas", "engine", "resources", "head",
                     "persist", "steps", "vars", "recipe", "name", "dashboard_port"]),
    st.sampled_from(["nan", "-1", "0", "65536", "'x'", "'tag:'", "'a,,b'", "'${NOPE_X}'",
                     "['s']", "['model:m']", "['ray']", "[]", "true", "{}",
                     "{ 'tag:x' = { GPU = 1 } }", "{ K = 1 }", "'auto'", "'0-3'",
                     "[" * 40 + "]" * 40]),
)


@SETTINGS
@given(declared_text)
def test_any_declaration_loads_or_is_one_line_naming_the_file(tmp_path_factory, text: str
                                                              ) -> None:
    """[up], [ray], [[services]], [[models]] with odd values: declared or one line."""
    folder = tmp_path_factory.mktemp("decl")
    path = folder / "saf.toml"
    path.write_text(text)
    try:
        declared(load_inventory(path))
    except SafError as exc:
        failed: SafError | None = exc
    else:
        failed = None
    if failed is not None:
        _one_line_naming(failed, path)
        assert failed.exit_code == 2


recipe_text = st.one_of(
    st.text(alphabet=string.printable, max_size=200),
    st.builds(lambda key, value: f'name = "r"\n[[steps]]\nname = "s"\nrun = "true"\n'
              f'{key} = {value}\n',
              st.sampled_from(["timeout", "retries", "delay", "on", "on_failure", "become",
                               "check", "creates", "serial", "kind", "tries", "interval"]),
              st.sampled_from(["nan", "inf", "-1", "1.5", "1e308", "'x'", "[]", "true", "{}",
                               "[" * 40 + "]" * 40])),
)


@SETTINGS
@given(recipe_text)
def test_any_recipe_loads_or_is_one_line_naming_the_file(tmp_path_factory, text: str) -> None:
    folder = tmp_path_factory.mktemp("recipe")
    path = folder / "r.toml"
    path.write_text(text)
    state = folder / "state"
    before = os.environ.get("SAF_STATE_DIR")
    os.environ["SAF_STATE_DIR"] = str(state)
    refused: SafError | None = None
    try:
        load_recipe(path)
    except SafError as exc:
        refused = exc
    finally:  # put back what was there (hypothesis runs this many times in one test)
        if before is None:
            os.environ.pop("SAF_STATE_DIR", None)
        else:
            os.environ["SAF_STATE_DIR"] = before
    if refused is not None:
        _one_line_naming(refused, path)
        assert refused.exit_code == 2
    assert not state.exists()
