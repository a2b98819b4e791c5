"""kind = "sysctl": kernel settings, live and across reboots.

`settings` is a table of sysctl keys and values (a value may use `{var}`; an empty value
leaves that key alone). Facts: the live values (/proc/sys, as `sysctl KEY` reads them) and
the step's file under /etc/sysctl.d. Plan: write the file and `sysctl -p` it when a live
value or the file differs; otherwise `skipped`. Run it with `become = true`.

`macos` is the same kind of table for macOS nodes, whose keys differ (kern.ipc.maxsockbuf,
net.inet.tcp.*): read with `sysctl KEY...` (`key: value`), each key that differs set with
`sysctl -w`. macOS keeps no sysctl.d, and /etc/sysctl.conf is read at boot by some releases
and not others, so the values are kept across reboots by a LaunchDaemon of their own
(/Library/LaunchDaemons/com.saf.sysctl.NAME.plist, NAME from `file`): launchd runs its
`sysctl -w` once at each boot (RunAtLoad). The plist is written when it is missing or says
otherwise, like the sysctl.d file on Linux. A step may have either table or both; a node whose
system has none is skipped.
"""

from __future__ import annotations

import plistlib
import posixpath
import re
from typing import Annotated

from msgspec import Meta

from saf.recipe.facts import ROOT
from saf.recipe.kinds.base import Fail, Kind, KindParams, Outcome, Plan, StepContext, StepFailed
from saf.recipe.schema import Text
from saf.shell import quote

_KEY = re.compile(r"[a-z0-9_]+(\.[a-zA-Z0-9_-]+)+")
_MARK = "saf-sysctl-file"
_DARWIN = "saf-sysctl-darwin"
_PLIST_MARK = "saf-sysctl-plist"
LAUNCH_DAEMONS = "/Library/LaunchDaemons"


def launch_daemon(file: str, values: dict[str, str]) -> tuple[str, str]:
    """The LaunchDaemon that sets `values` at boot on macOS: its path, and its text (the same
    bytes for the same values, so a second run finds it as written)."""
    name = posixpath.basename(file).removesuffix(".conf")
    label = f"com.saf.sysctl.{name}"
    plist = {"Label": label, "RunAtLoad": True,
             "ProgramArguments": ["/usr/sbin/sysctl", "-w",
                                  *(f"{k}={v}" for k, v in values.items())]}
    # One line (XML ignores the blanks between elements): --check shows one command.
    text = "".join(line.strip() for line in plistlib.dumps(plist, sort_keys=True).decode()
                   .splitlines())
    return f"{LAUNCH_DAEMONS}/{label}.plist", text


def parse_sysctl(output: str) -> dict[str, str]:
    """"k = v" lines (as `sysctl k1 k2` prints them) -> {k: v, blanks made one space}."""
    values = {}
    for line in output.splitlines():
        key, sep, value = line.partition(" = ")
        if sep:
            values[key.strip()] = " ".join(value.split())
    return values


SysctlValue = Annotated[str | int, Meta(description="a string or a whole number")]


class SysctlParams(KindParams):
    # sysctl keys and their values (Linux); may be left out when macos is given. The keys'
    # form is checked by parse.
    settings: dict[str, SysctlValue] | None = None
    # The file under /etc/sysctl.d that keeps them across reboots.
    file: Text = "/etc/sysctl.d/90-saf.conf"
    macos: dict[str, SysctlValue] | None = None  # keys and values for macOS nodes (set live)


class Sysctl(Kind[None]):
    name = "sysctl"
    forms = {"settings": "line", "macos": "line"}
    Params = SysctlParams

    def __init__(self, settings: dict[str, str], file: str,
                 macos: dict[str, str] | None = None) -> None:
        self.settings = settings
        self.file = file
        self.macos = macos or {}

    @classmethod
    def parse(cls, params: SysctlParams, fail: Fail) -> Sysctl:
        tables: dict[str, dict[str, str]] = {}
        for name in ("settings", "macos"):
            table = getattr(params, name)
            if table is None and (name == "macos" or params.macos is not None):
                continue
            if not table:
                raise fail(name, f"{name!r} must be a table like {{ \"vm.swappiness\" = 10 }}")
            for key in table:
                if not _KEY.fullmatch(key):
                    raise fail(name, f"{key!r} is not a sysctl key")
            tables[name] = {key: str(value) for key, value in table.items()}
        file = params.file
        if not file.startswith("/etc/sysctl.d/") or not file.endswith(".conf"):
            raise fail("file", "'file' must be /etc/sysctl.d/NAME.conf")
        return cls(tables.get("settings", {}), file, tables.get("macos"))

    def templates(self) -> list[tuple[str, str]]:
        return ([("settings", value) for value in self.settings.values()]
                + [("macos", value) for value in self.macos.values()])

    def describe(self) -> str:
        macos = ("; macOS " + ", ".join(f"{k}={v}" for k, v in self.macos.items())
                 if self.macos else "")
        return "sysctl " + ", ".join(f"{k}={v}" for k, v in self.settings.items()) + macos

    async def plan(self, ctx: StepContext) -> Plan[None]:
        if self.macos:
            # One call: macOS answers its own keys; any other system falls through to Linux.
            path, _ = launch_daemon(self.file, {})
            probe = await ctx.run(f'if [ "$(uname -s)" = Darwin ]; then echo {_DARWIN}; '
                                  f"sysctl {' '.join(quote(k) for k in self.macos)}; "
                                  f"echo {_PLIST_MARK}; cat {ROOT}{quote(path)} 2>/dev/null; "
                                  "fi; true", quiet=True)
            if probe.stdout.startswith(_DARWIN + "\n"):
                return self._plan_macos(ctx, probe.stdout, probe.stderr)
        if not self.settings:
            return Plan(False, "no settings for this system in the step")
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
        # Written and loaded where it was read: under $SAF_FACTS_ROOT on a recorded machine
        # (empty on a real node), so a test never writes the test machine's own /etc.
        file, tmp = f"{ROOT}{quote(self.file)}", f"{ROOT}{quote(self.file + '.saf-tmp')}"
        commands = [f"printf %s {quote('# written by saf' + chr(10) + body)} > {tmp} && "
                    f"mv {tmp} {file}", f"sysctl -p {file}"]
        return Plan(True, "would set " + (", ".join(differ) if differ else
                                          f"nothing live; write {self.file}"), commands)

    def _plan_macos(self, ctx: StepContext, output: str, errors: str) -> Plan[None]:
        wanted = {k: " ".join(ctx.render(v, shell=False).split())
                  for k, v in self.macos.items()}
        wanted = {k: v for k, v in wanted.items() if v}
        output, _, kept = output.partition(_PLIST_MARK + "\n")
        live = {}
        for line in output.splitlines()[1:]:
            key, sep, value = line.partition(": ")
            if sep:
                live[key.strip()] = " ".join(value.split())
        absent = [k for k in wanted if k not in live]
        if absent:
            why = errors.strip().splitlines()[:1]
            raise StepFailed(f"this macOS has no {', '.join(absent)}"
                             + (f" ({why[0]})" if why else ""))
        differ = {k: v for k, v in wanted.items() if live[k] != v}
        path, plist = launch_daemon(self.file, wanted)
        kept = kept.rstrip("\n")
        if not differ and kept == plist:
            return Plan(False, "already " + ", ".join(f"{k}={v}" for k, v in wanted.items())
                        + f", kept by {path}")
        commands = [f"sysctl -w {quote(f'{k}={v}')}" for k, v in differ.items()]
        if kept != plist:
            tmp = f"{ROOT}{quote(path + '.saf-tmp')}"
            commands.append(f"printf '%s\\n' {quote(plist)} > {tmp} && chmod 644 {tmp} && "
                            f"mv {tmp} {ROOT}{quote(path)}")
        said = ", ".join(f"{k} {live[k]} -> {v}" for k, v in differ.items())
        keep = f"write {path}" if kept != plist else ""
        return Plan(True, "would " + "; ".join(x for x in (f"set {said}" if said else "",
                                                            keep) if x), commands)

    async def apply(self, ctx: StepContext, plan: Plan[None]) -> Outcome:
        return Outcome.from_result(await ctx.run(" && ".join(plan.commands)))
