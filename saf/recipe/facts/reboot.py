"""Does a node need a reboot, and why: the facts script and its reading.

Reasons, each with the next action a person takes:
- `/var/run/reboot-required` exists (apt's flag; the .pkgs file names the packages);
- a kernel module that should be loaded is not and will not load (`modprobe` says why; in
  `--check` only `modprobe -n` is tried, which changes nothing);
- Secure Boot is on and a Machine Owner Key waits to be enrolled (`mokutil --sb-state`,
  `mokutil --list-new`): the enrollment happens at the next boot, on the node's console;
- kernel arguments asked for are not on the running kernel's command line (/proc/cmdline).
"""

from __future__ import annotations

from dataclasses import dataclass

from saf.recipe.facts import ROOT
from saf.shell import quote

CHECKS = ("flag", "secure-boot", "module", "cmdline")
BOOT_ID = f"cat {ROOT}/proc/sys/kernel/random/boot_id"


def script(module: str | None, check_mode: bool) -> str:
    lines = [
        f'R={ROOT}',
        'if [ -e "$R/var/run/reboot-required" ]; then',
        '  echo "flag $(tr "\\n" " " < "$R/var/run/reboot-required.pkgs" 2>/dev/null)"; fi',
        'if command -v mokutil >/dev/null 2>&1; then',
        '  echo "sb $(mokutil --sb-state 2>&1 | head -n 1)"',
        '  new=$(mokutil --list-new 2>/dev/null | grep -cE "^\\[key|SHA1 Fingerprint")',
        '  echo "mok-new $new"; fi',
        'echo "cmdline $(cat "$R/proc/cmdline" 2>/dev/null)"',
    ]
    if module:
        probe = "modprobe -n -v" if check_mode else "modprobe"
        m = quote(module)
        lines += [
            f'if grep -q "^"{m}" " "$R/proc/modules" 2>/dev/null; then echo "module loaded";',
            f'elif out=$({probe} {m} 2>&1); then echo "module loads";',
            'else echo "module fails $(printf %s "$out" | tr "\\n" " ")"; fi',
        ]
    return "\n".join(lines) + "\ntrue"


@dataclass(frozen=True)
class Reason:
    check: str  # which of CHECKS found it
    what: str   # the named state, in a few words
    next: str   # what to do about it

    def line(self) -> str:
        return f"{self.what} (next: {self.next})"


def reasons(output: str, *, module: str | None, cmdline: list[str]) -> list[Reason]:
    facts: dict[str, str] = {}
    for line in output.splitlines():
        key, _, value = line.partition(" ")
        facts[key] = value.strip()
    found = []
    if "flag" in facts:
        pkgs = facts["flag"]
        found.append(Reason("flag", "the system says a reboot is required (/var/run/reboot-required"
                            + (f"; for {pkgs}" if pkgs else "") + ")", "reboot the node"))
    sb = facts.get("sb", "")
    new = facts.get("mok-new", "0")
    if "enabled" in sb.lower() and new.isdigit() and int(new) > 0:
        found.append(Reason(
            "secure-boot",
            "Secure Boot is on and a Machine Owner Key enrollment is pending (mokutil --list-new)",
            "reboot and, on the node's console, choose Enroll MOK in the blue MOK Manager "
            "screen with the password given when the driver was installed"))
    state, _, detail = facts.get("module", "").partition(" ")
    if module and state == "fails":
        if "not found" in detail.lower():
            next_step = ("install it (the driver step), or reboot into the kernel it was "
                         "built for")
        elif "key was rejected" in detail.lower():
            next_step = ("the module is not signed for Secure Boot: enroll its key (mokutil "
                         "--import) and reboot")
        else:
            next_step = "reboot (an older module may still be loaded)"
        found.append(Reason("module", f"kernel module {module} will not load "
                            f"({detail or 'no reason'})", next_step))
    running = facts.get("cmdline", "").split()
    # An argument with an empty value ("isolcpus=" from an unset variable) is not asked for.
    absent = [arg for arg in cmdline if not arg.endswith("=") and arg not in running]
    if absent:
        found.append(Reason("cmdline", "the running kernel lacks " + " ".join(absent)
                            + " on its command line", "reboot to boot with them"))
    return found
