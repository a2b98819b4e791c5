"""The one place step kinds are registered: each kind's name and where its class lives,
imported when a recipe first names it. Every kind imports what it drives (Ray's, the network
tests', the drivers' and the models' code), and a command that runs a recipe of three kinds
should not load the other thirteen before its first step: `saf up` starts faster for it."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, MutableMapping
from typing import Any

from saf.recipe.kinds.base import Kind, Outcome, Plan, StepContext

# name -> "module:Class" under saf.recipe.kinds (each kind has its own Plan data). The Ray
# cluster's kinds are in docs/ray.md, the declared cluster's (service) in docs/services.md.
WHERE: dict[str, str] = {
    "shell": "shell:Shell",
    "upload": "upload:Upload",
    "wait": "wait:Wait",
    "apt": "apt:Apt",
    "nvidia-driver": "nvidia_driver:NvidiaDriver",
    "sysctl": "sysctl:Sysctl",
    "reboot": "reboot:Reboot",
    "gpu": "gpu:Gpu",
    "net_test": "net_test:NetTest",
    "mtu": "mtu:Mtu",
    "model": "model:ModelServer",
    "recipe": "include:Include",
    "ray_start": "ray_start:RayStart",
    "ray_stop": "ray_stop:RayStop",
    "python_match": "python_match:PythonMatch",
    "service": "service:Service",
}


class Kinds(MutableMapping[str, type[Kind[Any]]]):
    """The registry: a mapping of kind name to class that imports a kind's module when it is
    first looked up. Listing the names (`in`, iteration, `sorted`) imports nothing."""

    def __init__(self, where: dict[str, str]) -> None:
        self._where = dict(where)
        self._loaded: dict[str, type[Kind[Any]]] = {}

    def __getitem__(self, name: str) -> type[Kind[Any]]:
        if name not in self._loaded:
            module, _, attr = self._where[name].partition(":")  # KeyError: no such kind
            found = getattr(importlib.import_module(f"{__name__}.{module}"), attr)
            if found.name != name:  # a mistake in WHERE
                raise TypeError(f"kind {name!r} names {found.__name__}, whose name is "
                                f"{found.name!r}")
            self._loaded[name] = found
        return self._loaded[name]

    def __setitem__(self, name: str, kind: type[Kind[Any]]) -> None:
        self._where[name] = ""
        self._loaded[name] = kind

    def __delitem__(self, name: str) -> None:
        del self._where[name]
        self._loaded.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, name: object) -> bool:
        return name in self._where


KINDS = Kinds(WHERE)

__all__ = ["KINDS", "Kind", "Outcome", "Plan", "StepContext"]
