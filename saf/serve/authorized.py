"""Who may log in to `saf serve --ssh`, and the server's own host key.

The authorized keys are OpenSSH's `authorized_keys` format (asyncssh reads it, `from=` patterns
included). A key whose options carry `environment="SAF_READONLY=1"` gets a read-only cockpit;
OpenSSH's sshd accepts that option too, so the same file can serve both. The file is read again
when it changes, so a key removed stops working for the next login without a restart.

The host key is made once (Ed25519) in saf's state folder, 0600, so clients can pin it; a key
file others can read is refused, as sshd does.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from saf.errors import SafError
from saf.paths import open_private, private_dir, state_dir

READONLY_ENV = "SAF_READONLY"
YES = frozenset({"1", "yes", "true", "on"})


@dataclass(frozen=True)
class KeyGrant:
    """A key that may log in: its fingerprint (SHA256:...), and whether it is read-only."""

    fingerprint: str
    readonly: bool


def default_authorized_keys() -> Path:
    return Path.home() / ".ssh" / "authorized_keys"


class AuthorizedKeys:
    def __init__(self, path: Path, keys: asyncssh.SSHAuthorizedKeys, mtime: float) -> None:
        self.path = path
        self._keys = keys
        self._mtime = mtime

    def _fresh(self) -> asyncssh.SSHAuthorizedKeys:
        try:
            mtime = self.path.stat().st_mtime_ns
        except OSError:
            return self._keys
        if mtime != self._mtime:
            try:
                self._keys, self._mtime = _read(self.path), mtime
            except SafError:
                pass  # a file being edited: keep what was read last
        return self._keys

    def check(self, key: asyncssh.SSHKey, client_host: str, client_addr: str) -> KeyGrant | None:
        """The key's rights, or None when it may not log in (from this address)."""
        options = self._fresh().validate(key, client_host, client_addr)
        if options is None:
            return None
        env = options.get("environment") or {}
        readonly = isinstance(env, dict) and str(env.get(READONLY_ENV, "")).lower() in YES
        return KeyGrant(fingerprint=key.get_fingerprint(), readonly=readonly)


def _read(path: Path) -> asyncssh.SSHAuthorizedKeys:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SafError(f"{path}: no such authorized-keys file (give one with "
                       "--authorized-keys)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SafError(f"{path}: cannot read the authorized keys: {exc}") from None
    try:
        return asyncssh.SSHAuthorizedKeys(text)
    except ValueError:
        raise SafError(f"{path}: no valid public key in it; nobody could log in") from None


def load_authorized_keys(path: Path) -> AuthorizedKeys:
    path = Path(path).expanduser()
    keys = _read(path)
    return AuthorizedKeys(path, keys, path.stat().st_mtime_ns)


def default_host_key() -> Path:
    return state_dir() / "serve" / "ssh_host_ed25519_key"


def ensure_host_key(path: Path | None = None) -> asyncssh.SSHKey:
    """The server's host key: read from `path`, made there first if it does not exist."""
    path = Path(path).expanduser() if path is not None else default_host_key()
    if not path.exists():
        private_dir(path.parent)
        key = asyncssh.generate_private_key("ssh-ed25519", comment="saf serve")
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open_private(tmp, "wb") as out:
            out.write(key.export_private_key())
        os.replace(tmp, path)
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
