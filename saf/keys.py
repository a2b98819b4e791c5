"""Installing the operator's public key on nodes that only accept a password (`saf keys push`).

For each node, in parallel:

1. Try key login with the operator's key alone (no password, no other key). If it works the
   key is already installed and nothing is touched.
2. Otherwise log in with the password (asked once for all nodes, only if some node needs it),
   and append the key to ~/.ssh/authorized_keys unless a line already holds it (by key type
   and data, whatever its comment or options), making ~/.ssh 700 and the file 600.
3. Prove the result with a fresh connection that may use only that key.

The password is held in memory for the run only: never written, logged, put in a command line
or an error message. The public key reaches the node on the command's stdin, never in the
command text.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import asyncssh

from saf.connect import hostkeys
from saf.connect.ssh import SSHConnector
from saf.errors import ConnectError, SafError
from saf.events import Emit, Event, ignore
from saf.fanout import fan_out, results
from saf.inventory.model import Node

DEFAULT_PUBLIC_KEYS = ("~/.ssh/id_ed25519.pub", "~/.ssh/id_ecdsa.pub", "~/.ssh/id_rsa.pub")
DEFAULT_CONCURRENCY = 32

ADDED, PRESENT, FAILED, SKIPPED = "added", "present", "failed", "skipped"

# Runs on the node under POSIX sh; the key line arrives on stdin. A line "holds" the key when
# two neighbouring fields are the key's type and data, so a comment or an options prefix
# (from="...",no-pty ssh-ed25519 AAAA...) does not hide it. Prints "added" or "present".
AUTHORIZE_SCRIPT = r"""
umask 077
IFS= read -r saf_key || [ -n "$saf_key" ] || { echo "no key on stdin" >&2; exit 2; }
saf_dir="$HOME/.ssh"
saf_file="$saf_dir/authorized_keys"
mkdir -p "$saf_dir" || exit 3
chmod 700 "$saf_dir" || exit 3
[ -e "$saf_file" ] || : > "$saf_file" || exit 3
chmod 600 "$saf_file" || exit 3
if printf '%s\n' "$saf_key" | awk '
    NR == FNR { type = $1; data = $2; next }
    { for (i = 1; i < NF; i++) if ($i == type && $(i + 1) == data) found = 1 }
    END { exit found ? 0 : 1 }' - "$saf_file"; then
  echo present
else
  if [ -s "$saf_file" ] && [ -n "$(tail -c 1 "$saf_file")" ]; then
    echo >> "$saf_file" || exit 3
  fi
  printf '%s\n' "$saf_key" >> "$saf_file" || exit 3
  echo added
fi
"""


@dataclasses.dataclass(frozen=True)
class PublicKey:
    """The operator's public key: the .pub file, its one line, and the private key beside it
    (used to prove that key login works)."""

    path: Path
    line: str
    private: Path | None

    @property
    def fingerprint(self) -> str:
        return asyncssh.import_public_key(self.line).get_fingerprint("sha256")


@dataclasses.dataclass(frozen=True, kw_only=True)
class KeyPushed(Event):
    """What `saf keys push` did on one node: outcome is added, present, failed or skipped."""

    kind: ClassVar[str] = "key_push"
    node: str
    outcome: str
    message: str = ""
    reason: str = ""


def read_public_key(path: Path) -> PublicKey:
    """Read and check one OpenSSH public key file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SafError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SafError(f"{path}: cannot read: {exc}") from None
    if "PRIVATE KEY" in text:
        raise SafError(f"{path} is a private key; pass its public half ({path}.pub)")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    if len(lines) != 1:
        raise SafError(f"{path}: expected one OpenSSH public key line, found {len(lines)}")
    line = lines[0]
    try:
        asyncssh.import_public_key(line)
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise SafError(f"{path} is not an OpenSSH public key ({exc})") from None
    if any(ord(c) < 32 for c in line):
        raise SafError(f"{path}: the key line holds control characters")
    private = path.with_suffix("") if path.suffix == ".pub" else None
    return PublicKey(path, line, private if private and private.is_file() else None)


def config_identities(node: Node) -> list[Path]:
    """The IdentityFile entries the OpenSSH config gives this node (the inventory's
    ssh_config, else ~/.ssh/config), read by asyncssh as it reads them to connect."""
    return [Path(f).expanduser() for f in hostkeys.resolve(node).identity_files]


def find_public_key(node: Node | None = None, explicit: str | os.PathLike[str] | None = None
                    ) -> PublicKey:
    """The key to install: --key (a .pub file, or a private key with its .pub beside it);
    else the node's inventory identity + .pub; else the node's IdentityFile in the OpenSSH
    config (the first with a .pub beside it), as `ssh` would log in with it; else
    ~/.ssh/id_ed25519.pub, id_ecdsa.pub, id_rsa.pub, the first that exists."""
    if explicit:
        path = Path(explicit).expanduser()
        if path.suffix != ".pub" and Path(f"{path}.pub").is_file():
            path = Path(f"{path}.pub")
        return read_public_key(path)
    if node is not None and node.identity:
        identity = Path(node.identity).expanduser()
        pub = Path(f"{identity}.pub")
        if not pub.is_file():
            raise SafError(f"{node.name}: the inventory's identity {node.identity} has no "
                           f"public key beside it ({pub}); make it with "
                           f"`ssh-keygen -y -f {identity} > {pub}` or pass --key PATH")
        return read_public_key(pub)
    for identity in config_identities(node) if node is not None else ():
        pub = Path(f"{identity}.pub")
        if pub.is_file():
            return read_public_key(pub)
    for candidate in DEFAULT_PUBLIC_KEYS:
        path = Path(candidate).expanduser()
        if path.is_file():
            return read_public_key(path)
    raise SafError("no SSH public key found (looked for " + ", ".join(DEFAULT_PUBLIC_KEYS)
                   + "); create one with `ssh-keygen -t ed25519`, or pass --key PATH")


class KeyOnlyConnector(SSHConnector):
    """Logs in with exactly one key: its private file, or an agent identity with the same
    public key. No password, no other key, so success proves that key works."""

    def __init__(self, node: Node, key: PublicKey) -> None:
        # A passphrase-protected key file is skipped; the agent may hold the key instead, and
        # may offer only that key. (Without a private file beside the .pub, asyncssh falls
        # back to the default key files as well: the proof is then "some key of yours".)
        super().__init__(node, client_keys=[str(key.private)] if key.private else [],
                         extra_options=dict(ignore_encrypted=True,
                                            agent_identities=[str(key.path)],
                                            password_auth=False, kbdint_auth=False,
                                            gss_auth=False))
        self.key = key


async def _key_login(node: Node, key: PublicKey) -> ConnectError | None:
    """None when `key` alone logs in to `node`, else why not."""
    conn = KeyOnlyConnector(node, key)
    try:
        result = await conn.run("true", timeout=node.connect_timeout)
        if not result.ok:
            return ConnectError(node.name, "error", "logged in with the key, but running "
                                f"`true` failed (exit {result.exit_status})")
        return None
    except ConnectError as exc:
        return exc
    finally:
        await conn.close()


async def _authorize(node: Node, key: PublicKey, password: str) -> KeyPushed:
    conn = SSHConnector(node, password=password)
    try:
        result = await conn.run(AUTHORIZE_SCRIPT, input=key.line,
                                timeout=max(node.connect_timeout, 10) * 3)
    except ConnectError as exc:
        if exc.reason == "auth":
            return KeyPushed(node=node.name, outcome=FAILED, reason="auth",
                             message=f"password login failed for {node.address} (wrong "
                             "password, or the server does not allow password login)")
        return KeyPushed(node=node.name, outcome=FAILED, reason=exc.reason, message=exc.detail)
    finally:
        await conn.close()
    said = result.stdout.strip().splitlines()[-1:] or [""]
    if not result.ok or said[0] not in (ADDED, PRESENT):
        detail = " ".join(result.tail(3)) or f"exit status {result.exit_status}"
        return KeyPushed(node=node.name, outcome=FAILED, reason="remote",
                         message=f"could not update ~/.ssh/authorized_keys: {detail}")
    outcome = said[0]
    failure = await _key_login(node, key)
    if failure is not None:
        return KeyPushed(node=node.name, outcome=FAILED, reason="proof",
                         message=f"key {'added' if outcome == ADDED else 'was present'} but "
                         f"key login still fails: {failure.detail}. Check that the node's "
                         "home folder is not group- or world-writable and that its sshd "
                         "allows PubkeyAuthentication")
    message = ("key added; key login works" if outcome == ADDED else
               "key was in authorized_keys; permissions fixed; key login works")
    return KeyPushed(node=node.name, outcome=outcome, message=message)


async def push_keys(nodes: list[Node], keys: dict[str, PublicKey],
                    ask_password: Callable[[], str], *, emit: Emit = ignore,
                    concurrency: int = DEFAULT_CONCURRENCY) -> list[KeyPushed]:
    """Install each node's key (keys[node.name]); returns one KeyPushed per node, in order.
    `ask_password` is called at most once, and only when some node needs the password."""
    pushed: dict[str, KeyPushed] = {}

    def done(event: KeyPushed) -> None:
        pushed[event.node] = event
        emit(event)

    ssh_nodes = []
    for node in nodes:
        if node.connection == "local":
            done(KeyPushed(node=node.name, outcome=SKIPPED,
                           message="local node: reached without SSH"))
        else:
            ssh_nodes.append(node)

    need: list[Node] = []
    async def probe(node: Node) -> tuple[Node, ConnectError | None]:
        # A pair, not the bare ConnectError: a fan-out's outcome that is an Exception reads
        # as one the function raised.
        return node, await _key_login(node, keys[node.name])

    for node, failure in results(await fan_out(ssh_nodes, probe, limit=concurrency)):
        if failure is None:
            done(KeyPushed(node=node.name, outcome=PRESENT,
                           message="key login already works"))
        elif failure.reason == "auth":
            need.append(node)
        else:
            done(KeyPushed(node=node.name, outcome=FAILED, reason=failure.reason,
                           message=failure.detail))

    if need:
        password = ask_password()

        async def install(node: Node) -> None:
            try:
                event = await _authorize(node, keys[node.name], password)
            except ConnectError as exc:
                event = KeyPushed(node=node.name, outcome=FAILED, reason=exc.reason,
                                  message=exc.detail)
            done(event)

        results(await fan_out(need, install, limit=concurrency))
    return [pushed[n.name] for n in nodes]
