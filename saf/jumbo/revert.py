"""The revert that is armed on a node before its network changes.

`arm` starts a detached timer process on the node (its own session, so neither saf's process
guard nor a dropped connection stops it) that sleeps, then restores the saved state unless saf
has confirmed by then. Saf and the timer meet in a private folder: the file `armed` is renamed
to `confirmed` by saf or to `fired` by the timer, and a rename happens once, so exactly one of
them wins even at the last moment. Confirming kills the timer's process group (no timer is
left behind); firing leaves `reverted` (the restore's exit status) and `log` for saf to read,
after which saf removes the folder. `fire_now` ends the sleep early, so a transaction that is
known to have failed reverts at once on the nodes saf can still reach.
"""

from __future__ import annotations

import secrets

from saf.shell import quote

# The timer, run as `sh timer DIR`. RESTORE is put in by timer_script.
_TIMER = """d="$1"
echo $$ > "$d/pid"
sleep {seconds} &
echo $! > "$d/sleep"
wait $!
if mv "$d/armed" "$d/fired" 2>/dev/null; then
  {{
{restore}
  }} > "$d/log" 2>&1
  echo $? > "$d/reverted.part"
  mv "$d/reverted.part" "$d/reverted"
fi
"""

# setsid(1) where there is one (util-linux), perl's POSIX::setsid elsewhere (macOS ships perl).
# fd 3 is the process guard's copy of the channel's stdin: the timer must not hold it.
_DETACH = ('if command -v setsid >/dev/null 2>&1; then '
           'setsid sh "$d/timer" "$d" </dev/null >/dev/null 2>&1 3<&- & '
           "else perl -MPOSIX -e 'POSIX::setsid() or die; exec @ARGV' "
           'sh "$d/timer" "$d" </dev/null >/dev/null 2>&1 3<&- & fi')


def timer_script(seconds: float, restore: list[str]) -> str:
    body = "\n".join("    " + line for line in restore) or "    :"
    return _TIMER.format(seconds=f"{seconds:g}", restore=body)


def arm(seconds: float, restore: list[str]) -> str:
    """A command that starts the timer and prints `ARMED_AT FOLDER` (see armed_folder); it
    exits non-zero, having started nothing, when the timer could not be started."""
    return "\n".join([
        # The name is chosen before the folder is made and the trap set before it exists:
        # stopped (Ctrl-C, a timeout) before the timer runs, nothing has changed yet, and
        # nothing is left behind either. mkdir refuses a name that exists (no races in /tmp).
        f'd="${{TMPDIR:-/tmp}}/saf-revert.{secrets.token_hex(8)}"',
        """trap '[ -s "$d/sleep" ] || rm -rf "$d"; exit 143' TERM INT HUP""",
        'mkdir -m 700 "$d" || exit 1',
        f'printf "%s" {quote(timer_script(seconds, restore))} > "$d/timer"',
        ': > "$d/armed"',
        _DETACH,
        'i=0; while [ ! -s "$d/sleep" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done',
        'if [ ! -s "$d/sleep" ]; then echo "saf: the revert timer did not start" >&2; '
        'rm -rf "$d"; exit 1; fi',
        f'echo "{ARMED_AT} $d"',
        "trap - TERM INT HUP",
    ])


def armed_folder(stdout: str) -> str | None:
    """The timer's folder from `arm`'s output, or None when it was not armed."""
    for line in stdout.splitlines():
        if line.startswith(ARMED_AT + " "):
            return line[len(ARMED_AT) + 1:].strip()
    return None


ARMED_AT = "saf-revert-armed"
# Printed by `confirm` when saf won the race, and by `status`.
CONFIRMED = "saf-confirmed"
ARMED = "saf-armed"
REVERTED = "saf-reverted"
GONE = "saf-gone"


def confirm(folder: str) -> str:
    """Keep the change: stop the timer (its whole process group) and remove its folder.
    Prints CONFIRMED, or exits 3 when the timer fired first."""
    d = quote(folder)
    return (f'd={d}; if mv "$d/armed" "$d/confirmed" 2>/dev/null; then '
            'p=$(cat "$d/pid"); kill -TERM -"$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null; '
            f'rm -rf "$d"; echo {CONFIRMED}; else echo "saf: the revert fired first" >&2; '
            'exit 3; fi')


def fire_now(folder: str) -> str:
    """Revert without waiting for the timer: end its sleep (it then restores as usual)."""
    d = quote(folder)
    return f'd={d}; [ -e "$d/armed" ] && kill -TERM "$(cat "$d/sleep")" 2>/dev/null; true'


def status(folder: str) -> str:
    """Prints ARMED while the timer sleeps or restores, REVERTED STATUS and the restore's log
    once it fired (and then removes the folder), GONE when there is no folder."""
    d = quote(folder)
    return (f'd={d}; if [ -e "$d/reverted" ]; then echo "{REVERTED} $(cat "$d/reverted")"; '
            f'cat "$d/log"; rm -rf "$d"; elif [ -d "$d" ]; then echo {ARMED}; '
            f'else echo {GONE}; fi')
