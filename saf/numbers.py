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
