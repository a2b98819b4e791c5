"""The one place step kinds are registered. Later issues add the cluster kinds here."""

from __future__ import annotations

from saf.recipe.kinds.base import Kind, Outcome, Plan, StepContext
from saf.recipe.kinds.shell import Shell
from saf.recipe.kinds.upload import Upload
from saf.recipe.kinds.wait import Wait

KINDS: dict[str, type[Kind]] = {kind.name: kind for kind in (Shell, Upload, Wait)}

__all__ = ["KINDS", "Kind", "Outcome", "Plan", "StepContext"]
