"""kind = "sysctl": kernel settings, live and across reboots.

`settings` is a table of sysctl keys and values (a value may use `{var}`; an empty value
leaves that key alone). Facts: the live values (/proc/sys, as `sysctl KEY` reads them) and
the step's file under /etc/sysctl.d. Plan: write the file and `sysctl -p` it when a live
value or the file differs; otherwise `skipped`. Run it with `become = true`.
"""

from __future__ import annotations

import re
from typing import Any

from saf.recipe.facts import ROOT
from saf.recipe.kinds.base import Fail, Kind, Outcome, Plan, StepContext, StepFailed, text
from saf.shell import quote

_KEY = re.compile(r"[a-z0-9_]+(\.[a-zA-Z0-9_-]+)+")
_MARK = "saf-sysctl-file"


def parse_sysctl(output: str) -> dict[str, str]:
    """"k = v" lines (as `sysctl k1 k2` prints them) -> {k: v, blanks made one space}."""
    values = {}
    for line in output.splitlines():
        key, sep, value = line.partition(" = ")
        if sep:
            values[key.strip()] = " ".join(value.split())
    return values


class Sysctl(Kind):
    name = "sysctl"
    keys = {"settings": "a table of sysctl keys and their values",
            "file": "the file under /etc/sysctl.d that keeps them across reboots"}

    def __init__(self, settings: dict[str, str], file: str) -> None:
        self.settings = settings
        self.file = file

    @classmethod
    def parse(cls, params: dict[str, Any], fail: Fail) -> Sysctl:
        settings = params.get("settings")
        if not isinstance(settings, dict) or not settings:
            raise fail("settings", "'settings' must be a table like { \"vm.swappiness\" = 10 }")
        clean = {}
        for key, value in settings.items():
            if not _KEY.fullmatch(key):
                raise fail("settings", f"{key!r} is not a sysctl key")
            if isinstance(value, bool) or not isinstance(value, (str, int)):
                raise fail("settings", f"the value of {key!r} must be a string or a whole number")
            clean[key] = str(value)
        file = text(params, "file", fail, default="/etc/sysctl.d/90-saf.conf") or ""
        if not file.startswith("/etc/sysctl.d/") or not file.endswith(".conf"):
            raise fail("file", "'file' must be /etc/sysctl.d/NAME.conf")
        return cls(clean, file)

    def templates(self) -> list[tuple[str, str]]:
        return [("settings", value) for value in self.settings.values()]

    def describe(self) -> str:
        return "sysctl " + ", ".join(f"{k}={v}" for k, v in self.settings.items())

    async def plan(self, ctx: StepContext) -> Plan:
        wanted = {k: " ".join(ctx.render(v, shell=False).split())
                  for k, v in self.settings.items()}
        wanted = {k: v for k, v in wanted.items() if v}
        if not wanted:
            return Plan(False, "no setting asked for")
        # The live values from /proc/sys (what `sysctl KEY` reads), one "key = value" each.
        reads = "".join(f"v=$(cat {ROOT}/proc/sys/{quote(k.replace('.', '/'))} 2>/dev/null) && "
                        f"echo {quote(k)} = $v; " for k in wanted)
        result = await ctx.run(f"{reads}echo {_MARK}; "
                               f"cat {ROOT}{quote(self.file)} 2>/dev/null; true", quiet=True)
        live_text, _, file_text = result.stdout.partition(_MARK + "\n")
        live = parse_sysctl(live_text)
        absent = [k for k in wanted if k not in live]
        if absent:
            raise StepFailed(f"this kernel has no {', '.join(absent)} (nothing in /proc/sys)")
        body = "".join(f"{k} = {v}\n" for k, v in wanted.items())
        differ = [f"{k} {live[k]} -> {v}" for k, v in wanted.items() if live[k] != v]
        if not differ and file_text == f"# written by saf\n{body}":
            return Plan(False, "already " + ", ".join(f"{k}={v}" for k, v in wanted.items()))
        commands = [f"printf %s {quote('# written by saf' + chr(10) + body)} > "
                    f"{quote(self.file + '.saf-tmp')} && mv {quote(self.file + '.saf-tmp')} "
                    f"{quote(self.file)}", f"sysctl -p {quote(self.file)}"]
        return Plan(True, "would set " + (", ".join(differ) if differ else
                                          f"nothing live; write {self.file}"), commands)

    async def apply(self, ctx: StepContext, plan: Plan) -> Outcome:
        return Outcome.from_result(await ctx.run(" && ".join(plan.commands)))
