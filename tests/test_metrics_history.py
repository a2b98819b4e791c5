"""A node's history (one row of floats a sample, columns reordered when the names change,
rates worked out when read) gives back exactly what a plain per-sample record of the same
samples gives, however the names come and go."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from saf.metrics.history import History, is_counter

POOL = ["cpu.percent", "mem.used", "nic.eth0.rx_bytes", "nic.eth0.mtu", "nic.eth1.rx_bytes",
        "gpu.0.util", "disk.sda.read_bytes", "numa.0.numa_hit"]

SAMPLE = st.tuples(
    st.lists(st.sampled_from(POOL), unique=True, max_size=len(POOL)),  # names, in this order
    st.lists(st.floats(0, 1e6, allow_nan=False), min_size=len(POOL), max_size=len(POOL)),
    st.floats(0.0, 2.0),   # agent clock step (0: the clock did not move)
    st.booleans(),         # a new agent said hello before this sample
)


def expected_values(samples: list, name: str, capacity: int) -> list[float | None]:
    """What a plain record says: the metric's value in each kept sample, or its rate."""
    kept = samples[-capacity:]
    first = len(samples) - len(kept)
    rate = name.endswith("/s")
    base = name.removesuffix("/s")
    out: list[float | None] = []
    for i, (names, values, clock, restart) in enumerate(kept, start=first):
        here = dict(zip(names, values, strict=False)).get(base)
        if not rate:
            out.append(here)
            continue
        if i == first or restart or here is None:
            out.append(None)
            continue
        names0, values0, clock0, _ = samples[i - 1]
        before = dict(zip(names0, values0, strict=False)).get(base)
        ok = before is not None and clock > clock0 and here >= before
        out.append((here - before) / (clock - clock0) if ok else None)
    return out


def close(a: list[float | None], b: list[float | None]) -> bool:
    return len(a) == len(b) and all(
        (x is None and y is None) or (x is not None and y is not None and math.isclose(x, y))
        for x, y in zip(a, b, strict=True))


@settings(max_examples=200, deadline=None)
@given(st.lists(SAMPLE, min_size=1, max_size=40), st.integers(2, 12))
def test_history_reads_back_what_was_written(steps, capacity):
    history = History(capacity, max_metrics=64)
    samples = []
    clock = 1000.0
    for names, values, step, restart in steps:
        if restart:
            history.restart()
        clock += step
        history.append(clock + 0.01, clock, list(names), values[:len(names)])
        samples.append((names, values[:len(names)], clock, restart))
    for name in POOL + [n + "/s" for n in POOL if is_counter(n)]:
        base = name.removesuffix("/s")
        seen_at = max((i for i, s in enumerate(samples) if base in s[0]), default=None)
        got = history.values(name, None)
        if not got:  # forgotten: not seen for a whole ring (or never)
            assert seen_at is None or len(samples) - 1 - seen_at >= capacity - 1
            continue
        assert close(got, expected_values(samples, name, capacity)), name
        assert close(history.values(name, 3), expected_values(samples, name, capacity)[-3:])
        latest = history.latest(name)
        assert close([latest], [expected_values(samples, name, capacity)[-1]])
    times = [t for t, _ in history.series("cpu.percent", None, None)]
    if times:
        assert times == [s[2] + 0.01 for s in samples[-capacity:]]


def test_names_beyond_the_limit_are_refused_and_a_counter_counts_twice():
    history = History(capacity=4, max_metrics=5)
    names = ["a", "nic.x.rx_bytes", "b", "c", "d"]
    history.append(1.0, 1.0, names, [1.0, 10.0, 2.0, 3.0, 4.0])
    assert history.names() == ["a", "nic.x.rx_bytes", "b", "c", "nic.x.rx_bytes/s"]
    assert history.dropped == {"d"}
    assert history.values("c", None) == [3.0]
    assert history.values("d", None) == []


def test_a_sample_of_the_wrong_length_is_refused_not_stored():
    history = History(capacity=4, max_metrics=64)
    names = ["a", "b"]
    history.append(1.0, 1.0, names, [1.0, 2.0])
    with pytest.raises(ValueError, match="1 values for 2 names"):
        history.append(2.0, 2.0, names, [1.0])
    assert history.values("b", None) == [2.0]
