"""kind = "nvidia-driver" (Ubuntu): the NVIDIA driver package and the running kernel's headers.

`driver = "recommended"` asks `ubuntu-drivers devices` which package fits the GPU; a number
("570") or a package ("nvidia-driver-570-open") names it. Facts: the running kernel, the
recommendation, and which nvidia-driver-* and linux-headers packages dpkg has. A node that
already has an nvidia-driver package keeps it when the choice is "recommended" (the plan says
which one the recommendation would be); a named driver that is not installed is installed.
A node with no NVIDIA device on its PCI bus (no vendor 10de) leaves the recipe: this step and
every later one skip it with that reason.
"""

from __future__ import annotations

from saf.recipe.facts import flag
from saf.recipe.facts.dpkg import QUERY, installed
from saf.recipe.facts.nvidia import PCI_SCRIPT, driver_package, has_nvidia, recommended_driver
from saf.recipe.kinds.apt import install_commands
from saf.recipe.kinds.base import Fail, Kind, KindParams, Outcome, Plan, StepContext, StepFailed
from saf.recipe.schema import Text

_KERNEL = "saf-kernel "
_UBUNTU_DRIVERS = "saf-ubuntu-drivers"


class NvidiaDriverParams(KindParams):
    # "recommended" (ubuntu-drivers decides), a number like 570, or a package like
    # nvidia-driver-570-open: its form is checked by parse (driver_package).
    driver: Text = "recommended"
    headers: Text = "true"  # "true" also installs linux-headers for the running kernel


class NvidiaDriver(Kind[None]):
    name = "nvidia-driver"
    forms = {"driver": "package", "headers": "bool"}
    Params = NvidiaDriverParams

    def __init__(self, driver: str, headers: str) -> None:
        self.driver = driver
        self.headers = headers

    @classmethod
    def parse(cls, params: NvidiaDriverParams, fail: Fail) -> NvidiaDriver:
        driver = params.driver
        if "{" not in driver:
            try:
                driver_package(driver)
            except ValueError as exc:
                raise fail("driver", str(exc)) from None
        return cls(driver, params.headers)

    def templates(self) -> list[tuple[str, str]]:
        return [("driver", self.driver), ("headers", self.headers)]

    def describe(self) -> str:
        which = "" if "{" in self.driver else f" ({self.driver})"  # a {var} is shown per run
        return f"NVIDIA driver{which} and kernel headers"

    async def plan(self, ctx: StepContext) -> Plan[None]:
        try:
            wanted = driver_package(ctx.render(self.driver, shell=False))
        except ValueError as exc:
            raise StepFailed(str(exc)) from None
        headers = flag(ctx.render(self.headers, shell=False))
        pci = await ctx.run(PCI_SCRIPT, quiet=True)
        if has_nvidia(pci.stdout) is False:
            return Plan(False, "no NVIDIA device (no 10de: vendor in lspci -n or "
                               "/sys/bus/pci/devices/*/vendor)", leaves_node=True)
        script = [f"echo {_KERNEL}$(uname -r)"]
        if wanted is None:
            script.append(f"echo {_UBUNTU_DRIVERS}; ubuntu-drivers devices 2>&1")
        script.append(f"{QUERY} 'nvidia-driver-*' \"linux-headers-$(uname -r)\""
                      " 2>/dev/null; true")
        result = await ctx.run("\n".join(script), quiet=True)
        out = result.stdout
        kernel = next((line[len(_KERNEL):].strip() for line in out.splitlines()
                       if line.startswith(_KERNEL)), "")
        have = installed(out)
        drivers = sorted(p for p in have if p.startswith("nvidia-driver-"))
        recommended = None
        if wanted is None:
            section = out.split(_UBUNTU_DRIVERS, 1)[1] if _UBUNTU_DRIVERS in out else ""
            recommended = recommended_driver(section)
            if recommended is None and not drivers:
                said = " ".join(section.split())[:200] or "nothing"
                raise StepFailed(
                    "ubuntu-drivers recommends no NVIDIA driver here (it said: " + said + "); "
                    "install ubuntu-drivers-common, or name one with --var driver=570")
        missing = []
        notes = []
        if wanted is not None and wanted not in have:
            missing.append(wanted)
        elif wanted is None and not drivers and recommended:
            missing.append(recommended)
        if drivers:
            notes.append(f"has {', '.join(drivers)}"
                         + (f" (ubuntu-drivers recommends {recommended})"
                            if recommended and recommended not in drivers else ""))
        header_pkg = f"linux-headers-{kernel}" if kernel else None
        if headers and header_pkg and header_pkg not in have:
            missing.append(header_pkg)
        if not missing:
            return Plan(False, "; ".join(notes + [f"headers for {kernel} installed"
                                                  if headers else "headers not asked for"]))
        return Plan(True, "would install " + " ".join(missing)
                    + (f" ({'; '.join(notes)})" if notes else ""),
                    install_commands(missing, None))

    async def apply(self, ctx: StepContext, plan: Plan[None]) -> Outcome:
        return Outcome.from_result(await ctx.run(" && ".join(plan.commands)))
