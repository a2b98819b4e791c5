"""The one place step kinds are registered."""

from __future__ import annotations

from typing import Any

from saf.recipe.kinds.apt import Apt
from saf.recipe.kinds.base import Kind, Outcome, Plan, StepContext
from saf.recipe.kinds.gpu import Gpu
from saf.recipe.kinds.include import Include
from saf.recipe.kinds.model import ModelServer
from saf.recipe.kinds.mtu import Mtu
from saf.recipe.kinds.net_test import NetTest
from saf.recipe.kinds.nvidia_driver import NvidiaDriver
from saf.recipe.kinds.python_match import PythonMatch
from saf.recipe.kinds.ray_start import RayStart
from saf.recipe.kinds.ray_stop import RayStop
from saf.recipe.kinds.reboot import Reboot
from saf.recipe.kinds.service import Service
from saf.recipe.kinds.shell import Shell
from saf.recipe.kinds.sysctl import Sysctl
from saf.recipe.kinds.upload import Upload
from saf.recipe.kinds.wait import Wait

KINDS: dict[str, type[Kind[Any]]] = {  # each kind has its own Plan data
    kind.name: kind for kind in (Shell, Upload, Wait, Apt, NvidiaDriver, Sysctl, Reboot, Gpu,
                                  NetTest, Mtu, ModelServer, Include)}

__all__ = ["KINDS", "Kind", "Outcome", "Plan", "StepContext"]

# The Ray cluster's kinds (docs/ray.md).
KINDS.update({kind.name: kind for kind in (RayStart, RayStop, PythonMatch)})

# The declared cluster's kinds (docs/services.md).
KINDS.update({kind.name: kind for kind in (Service,)})
