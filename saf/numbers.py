"""The one check of a number a person wrote (in saf.toml, a recipe, a [signals] table).

TOML reads `nan` and `inf` as floats, and NaN compares false with everything, so a plain
`value < 0` lets it through to fail later with a misleading message. Every reader of a
number asks `number_problem` instead and words the answer in its own file's terms.
"""

from __future__ import annotations

import math
from typing import Any


def number_problem(value: Any, *, low: float | None = 0.0, high: float | None = None,
                   integer: bool = False) -> str | None:
    """Why `value` is not an acceptable number, as 'must be ...', or None when it is."""
    whole = "a whole number" if integer else "a number"
    if low is not None and high is not None:
        span = f" from {low:g} to {high:g}"
    elif low is not None:
        span = f" >= {low:g}"
    elif high is not None:
        span = f" <= {high:g}"
    else:
        span = ""
    wanted = f"must be {whole}{span}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return wanted
    if isinstance(value, float) and not math.isfinite(value):
        return f"{wanted}, not {value!r}"
    if integer and not isinstance(value, int):
        return f"{wanted}, not {value!r}"
    if (low is not None and value < low) or (high is not None and value > high):
        return f"{wanted}, not {value!r}"
    return None


def port_problem(text: Any) -> str | None:
    """Why `text` (as written: "8000", or a TOML integer) is not a TCP/UDP port, or None.

    A port is a whole number from 1 to 65535 written as digits: "8000;id", "inf", "8e3" and
    "8000.0000001" are not ports (float("8000.0000001") would round to 8000)."""
    wanted = f"must be a port: a whole number from 1 to 65535, not {text!r}"
    if isinstance(text, int) and not isinstance(text, bool):
        return wanted if number_problem(text, low=1, high=65535, integer=True) else None
    digits = text.strip() if isinstance(text, str) else ""
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 5:
        return wanted
    return wanted if number_problem(int(digits), low=1, high=65535, integer=True) else None


def parse_port(text: Any) -> int:
    """`text` as a port; ValueError with `port_problem`'s words when it is not one."""
    problem = port_problem(text)
    if problem:
        raise ValueError(problem)
    return int(text.strip()) if isinstance(text, str) else int(text)
