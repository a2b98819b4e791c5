"""Who may log in to `saf serve --ssh`, and the server's own host key.

The authorized keys are OpenSSH's `authorized_keys` format, and the file as it is at each
login is the only truth: it is read again whenever it changed (a removed line, a file left
with only comments, a deleted file: that key cannot log in any more). A file saf cannot read
as a whole (a line that is not a key, a bad option) lets nobody in until it is fixed, and the
log says which line; keeping the keys read before would keep a revoked key working.

Every option OpenSSH's sshd defines is honoured or the key is refused, saying which option:

- `from=` (asyncssh matches it), `expiry-time=` (local time, or UTC with `Z`, as sshd reads
  it): a key used from elsewhere or too late is refused, and the log says so.
- `environment="SAF_READONLY=1"` gives a read-only cockpit (sshd accepts the option too, so one
  file serves both); other variables are not passed on, as sshd does by default.
- Options that forbid what saf serve never does (any forwarding, user rc files, a tunnel):
  `no-port-forwarding`, `no-agent-forwarding`, `no-X11-forwarding`, `no-user-rc`,
  `permitopen=`, `permitlisten=`, `tunnel=`, and those that only allow them back (`pty`,
  `port-forwarding`, ...): nothing to do.
- `no-touch-required` is asyncssh's to honour (a FIDO key must be touched unless it says so).
- Refused, with the reason: `command=` (saf cannot run a forced command in place of a
  cockpit), `no-pty` and `restrict` without `pty` (a cockpit is a terminal), `verify-required`
  (saf cannot check a FIDO key's PIN flag), `cert-authority` and `principals=` (saf serve takes
  keys, not certificates), and any option sshd does not know.

The host key is made once (Ed25519) in saf's state folder, 0600, so clients can pin it; a key
file others can read is refused, as sshd does.
"""

from __future__ import annotations

import calendar
import logging
import re
import stat
import time
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from saf.errors import SafError
from saf.paths import open_private, private_dir, replace_atomically, state_dir
from saf.untrusted import shown

log = logging.getLogger("saf.serve.ssh")

READONLY_ENV = "SAF_READONLY"
YES = frozenset({"1", "yes", "true", "on"})

# sshd's options that restrict only what saf serve never allows (forwarding of any kind, rc
# files, tunnels), or allow those back: honoured by saf serve refusing them all.
MOOT = frozenset({"no-port-forwarding", "no-agent-forwarding", "no-x11-forwarding",
                  "no-user-rc", "permitopen", "permitlisten", "tunnel", "port-forwarding",
                  "agent-forwarding", "x11-forwarding", "user-rc", "pty",
                  "no-touch-required"})
HONOURED = frozenset({"from", "environment", "expiry-time"})
REFUSED = {
    "command": "command= (saf serve cannot run a forced command in place of a cockpit)",
    "no-pty": "no-pty (a cockpit needs a terminal)",
    "verify-required": "verify-required (saf serve cannot check a FIDO key's PIN flag)",
    "cert-authority": "cert-authority (saf serve takes keys, not certificates)",
    "principals": "principals= (saf serve takes keys, not certificates)",
}
ASYNCSSH_PARSED = frozenset({"from", "environment", "command", "permitopen", "principals"})
EXPIRY = re.compile(r"^(\d{8})(\d{4}(\d{2})?)?(Z?)$", re.I)


@dataclass(frozen=True)
class KeyGrant:
    """A key that may log in: its fingerprint (SHA256:...), and whether it is read-only."""

    fingerprint: str
    readonly: bool


@dataclass(frozen=True)
class Verdict:
    """A key's rights, or why it may not log in."""

    grant: KeyGrant | None
    why: str


@dataclass(frozen=True)
class _Line:
    number: int
    text: str
    parsed: asyncssh.SSHAuthorizedKeys


def default_authorized_keys() -> Path:
    return Path.home() / ".ssh" / "authorized_keys"


def _signature(path: Path) -> tuple[int, ...] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _parse(path: Path, text: str) -> list[_Line]:
    """Every key line of the file; a line that is not one is a SafError naming it."""
    lines = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            parsed = asyncssh.SSHAuthorizedKeys(line)
        except (ValueError, asyncssh.KeyImportError) as exc:
            raise SafError(f"{path}:{number}: not a key saf can read ({shown(exc)})") from None
        lines.append(_Line(number, line, parsed))
    return lines


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SafError(f"{path}: no such authorized-keys file (give one with "
                       "--authorized-keys)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SafError(f"{path}: cannot read the authorized keys: {exc}") from None


def _expired(value: str, now: float) -> str | None:
    """Why an expiry-time has passed or cannot be read, or None while it holds."""
    found = EXPIRY.match(value)
    if found is None:
        return f"expiry-time={shown(value, 40)} is not YYYYMMDD[HHMM[SS]][Z]"
    digits = found.group(1) + (found.group(2) or "0000")
    digits += "" if found.group(3) else "00"
    try:
        parts = time.strptime(digits, "%Y%m%d%H%M%S")
    except ValueError:
        return f"expiry-time={shown(value, 40)} is not a date"
    ends = calendar.timegm(parts) if found.group(4) else time.mktime(parts)
    if now >= ends:
        return f"expiry-time={shown(value, 40)} has passed"
    return None


def judge(options: dict[str, object], now: float | None = None) -> tuple[bool, str]:
    """(read-only?, '') for options saf serve honours, or (False, why) for a key it refuses."""
    names = {name.lower(): value for name, value in options.items()}
    for name in options:
        # sshd reads option names in any case; asyncssh applies from= and environment= only
        # when written in lower case, so `FROM=` would be silently ignored: refuse it.
        if name != name.lower() and name.lower() in ASYNCSSH_PARSED:
            return False, f"{shown(name, 40)}= (write it in lower case: {name.lower()}=)"
    for name in names:
        if name in REFUSED:
            return False, REFUSED[name]
        if name == "restrict" and "pty" not in names:
            return False, "restrict without pty (a cockpit needs a terminal)"
        if name not in MOOT | HONOURED | {"restrict"}:
            return False, f"{shown(name, 40)} (an option saf serve does not know)"
    # asyncssh keeps an option it does not parse as the list of its values (an object here).
    for value in names.get("expiry-time") or []:  # type: ignore[attr-defined]
        why = _expired(str(value), time.time() if now is None else now)
        if why is not None:
            return False, why
    env = names.get("environment") or {}
    readonly = isinstance(env, dict) and str(env.get(READONLY_ENV, "")).lower() in YES
    return readonly, ""


class AuthorizedKeys:
    """The authorized-keys file, read again whenever it changed (see the module)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._signature: tuple[int, ...] | None = None
        self._lines: list[_Line] = []
        self._broken = ""  # why nobody may log in with the file as it is
        self._read_once = False

    def _fresh(self) -> None:
        signature = _signature(self.path)
        if self._read_once and signature == self._signature:
            return
        self._read_once = True
        self._signature = signature
        self._lines, self._broken = [], ""
        if signature is None:
            self._broken = f"{self.path} does not exist (no key may log in)"
        else:
            try:
                self._lines = _parse(self.path, _read_text(self.path))
            except SafError as exc:
                self._broken = f"{exc} (no key may log in until it is fixed)"
            else:
                if not self._lines:
                    self._broken = f"{self.path} holds no key (no key may log in)"
        if self._broken:
            log.warning("authorized keys: %s", self._broken)
        else:
            log.info("authorized keys: %d keys in %s", len(self._lines), self.path)

    def check(self, key: asyncssh.SSHKey, client_host: str, client_addr: str) -> Verdict:
        """The key's rights, or why it may not log in from this address (the first line of
        the file that lets it in, as sshd reads it; else the reason of the first that names
        it)."""
        self._fresh()
        if self._broken:
            return Verdict(None, self._broken)
        blob = key.export_public_key().decode().split()[1]
        reason = f"not in {self.path}"
        named = False
        for line in self._lines:
            if blob not in line.text.split():
                continue
            options = line.parsed.validate(key, client_host, client_addr)
            if options is None:
                if line.parsed.validate(key, client_host, client_addr, ca=True) is not None:
                    why = REFUSED["cert-authority"]
                else:
                    why = f"from= does not allow {shown(client_addr, 60)}"
            else:
                readonly, why = judge(dict(options))
                if not why:
                    return Verdict(KeyGrant(key.get_fingerprint(), readonly), "")
            if not named:
                named, reason = True, f"{self.path}:{line.number}: {why}"
        return Verdict(None, reason)


def load_authorized_keys(path: Path) -> AuthorizedKeys:
    """The file at `path`, read now: a missing or unreadable file, or one with no key in it,
    is a SafError (said when `saf serve` starts; later, such a file lets nobody in)."""
    path = Path(path).expanduser()
    text = _read_text(path)
    if not _parse(path, text):
        raise SafError(f"{path}: no valid public key in it; nobody could log in")
    return AuthorizedKeys(path)


def default_host_key() -> Path:
    return state_dir() / "serve" / "ssh_host_ed25519_key"


def ensure_host_key(path: Path | None = None) -> asyncssh.SSHKey:
    """The server's host key: read from `path`, made there first if it does not exist."""
    path = Path(path).expanduser() if path is not None else default_host_key()
    if not path.exists():
        private_dir(path.parent)
        key = asyncssh.generate_private_key("ssh-ed25519", comment="saf serve")
        replace_atomically(path, key.export_private_key(), mode=0o600)
        with open_private(path.with_name(path.name + ".pub"), "wb") as out:
            out.write(key.export_public_key())
        return key
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise SafError(f"{path}: the host key is readable by others (mode {mode:04o}); "
                       f"chmod 600 {path}")
    try:
        key = asyncssh.read_private_key(str(path))
    except (OSError, asyncssh.KeyImportError) as exc:
        raise SafError(f"{path}: not a usable private host key: {exc}") from None
    public = path.with_name(path.name + ".pub")
    if not public.exists():  # what clients pin, next to the key
        with open_private(public, "wb") as out:
            out.write(key.export_public_key())
    return key
