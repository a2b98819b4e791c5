"""kind = "apt": Debian/Ubuntu packages (and the PPA they come from) installed.

Facts: `dpkg-query` for the packages, and whether the PPA is already among apt's sources.
Plan: add the PPA when missing, `apt-get update` when a source was added, install what is
missing. Nothing missing: `skipped`. Run it with `become = true`.
"""

from __future__ import annotations

import re

from saf.recipe.facts import ROOT
from saf.recipe.facts.dpkg import QUERY, installed
from saf.recipe.kinds.base import Fail, Kind, KindParams, Outcome, Plan, StepContext, StepFailed
from saf.recipe.schema import Text
from saf.recipe.values import value_problem
from saf.shell import join, quote

INSTALL = "DEBIAN_FRONTEND=noninteractive apt-get install -y"
_PPA = re.compile(r"ppa:([a-z0-9][a-z0-9.+-]*)/([a-z0-9][a-z0-9.+-]*)")


def ppa_fact(ppa: str) -> str:
    """A command printing `ppa yes` when apt's sources already hold the PPA (either the
    one-line .list or the deb822 .sources form add-apt-repository writes)."""
    # The apt step lets only a ppa that _PPA matches through (when parsed, and rendered).
    owner, name = _PPA.fullmatch(ppa).groups()  # type: ignore[union-attr]
    pattern = quote(f"launchpad(content)?\\.net/{owner}/{name}/")
    return (f"if grep -rEqs {pattern} {ROOT}/etc/apt/sources.list.d {ROOT}/etc/apt/sources.list;"
            " then echo 'ppa yes'; else echo 'ppa no'; fi")


def install_commands(missing: list[str], ppa: str | None) -> list[str]:
    commands = []
    if ppa:
        commands += [f"add-apt-repository -y {quote(ppa)}", "apt-get update"]
    if missing:
        # `--`: whatever a name looks like, apt-get reads it as a package, never an option.
        commands.append(f"{INSTALL} -- {join(missing)}")
    return commands


class AptParams(KindParams):
    packages: Text  # space-separated package names
    ppa: Text | None = None  # a Launchpad PPA they come from (ppa:OWNER/NAME), added if missing


class Apt(Kind[None]):
    name = "apt"
    forms = {"packages": "packages", "ppa": "ppa"}
    Params = AptParams

    def __init__(self, packages: str, ppa: str | None) -> None:
        self.packages = packages
        self.ppa = ppa

    @classmethod
    def parse(cls, params: AptParams, fail: Fail) -> Apt:
        ppa = params.ppa
        if ppa is not None and "{" not in ppa and not _PPA.fullmatch(ppa):
            raise fail("ppa", f"'ppa' must look like ppa:OWNER/NAME, not {ppa!r}")
        return cls(params.packages, ppa)

    def templates(self) -> list[tuple[str, str]]:
        return [("packages", self.packages)] + ([("ppa", self.ppa)] if self.ppa else [])

    def describe(self) -> str:
        return f"apt install {self.packages}" + (f" (from {self.ppa})" if self.ppa else "")

    async def plan(self, ctx: StepContext) -> Plan[None]:
        packages = ctx.render(self.packages, shell=False).split()
        ppa = ctx.render(self.ppa, shell=False) if self.ppa else None
        if ppa and not _PPA.fullmatch(ppa):
            raise StepFailed(f"'ppa' must look like ppa:OWNER/NAME, not {ppa!r}")
        bad = value_problem("packages", " ".join(packages))
        if bad:
            raise StepFailed(f"packages: the value {bad}")
        script = f"{QUERY} -- {join(packages)} 2>/dev/null"
        if ppa:
            script += "\n" + ppa_fact(ppa)
        result = await ctx.run(script + "\ntrue", quiet=True)
        have = installed(result.stdout)
        missing = [p for p in packages if p not in have]
        add_ppa = ppa if ppa and "ppa yes" not in result.stdout.splitlines() else None
        if not missing and not add_ppa:
            return Plan(False, f"installed: {' '.join(packages)}")
        why = []
        if add_ppa:
            why.append(f"add {add_ppa}")
        if missing:
            why.append(f"install {' '.join(missing)}")
        return Plan(True, "would " + " and ".join(why), install_commands(missing, add_ppa))

    async def apply(self, ctx: StepContext, plan: Plan[None]) -> Outcome:
        return Outcome.from_result(await ctx.run(" && ".join(plan.commands)))
