"""Secrets (HF_TOKEN and the like): where they come from, and the one way they are hidden.

A value is a secret when it comes from an `env_file` (a file on the operator's machine named
by a service or model in saf.toml) or from saf's own environment through `"${NAME}"`; a value
written plainly in saf.toml is not (the file is not a secret store). Every secret read is
`register`ed in this process, and `redact` replaces each registered value with `***` in any
text saf may show or write: step output, errors, run logs, recordings, status JSON, /metrics.
`scrub` does the same through a whole event or JSON-like value.

A secret reaches a node only inside a 0600 file, whose text `env_file_text` builds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from saf.errors import ConfigError

MASK = "***"
# A reference to saf's own environment: the whole value is `${NAME}`.
_REFERENCE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# The one mode a file holding secrets has on a node.
FILE_MODE = 0o600
# A shorter value is not hidden in free text: an env_file's WORKERS=4 or DEBUG=1 would turn
# every 4 or 1 saf prints into ***, and so short a value guards nothing. It is still marked
# secret where it is shown as a value (Environment.shown).
MIN_HIDDEN = 6

_lock = threading.Lock()
_known: set[str] = set()
_pattern: re.Pattern[str] | None = None
T = TypeVar("T")


def register(values: Iterable[str]) -> None:
    """Hide these values from now on, in everything this process shows or writes. A value
    shorter than MIN_HIDDEN characters is not hidden in free text (see MIN_HIDDEN)."""
    global _pattern
    with _lock:
        new = {v for v in values if len(v) >= MIN_HIDDEN} - _known
        if not new:
            return
        _known.update(new)
        # Longest first, so a secret that contains another is hidden whole.
        ordered = sorted(_known, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(v) for v in ordered))


def forget_all() -> None:
    """Forget every registered secret (tests, and a process that loads another cluster)."""
    global _pattern
    with _lock:
        _known.clear()
        _pattern = None


def redact(text: str) -> str:
    """`text` with every registered secret replaced by `***`."""
    pattern = _pattern
    return text if pattern is None or not text else pattern.sub(MASK, text)


def scrub(value: T) -> T:
    """`value` with `redact` applied to every string inside it: a str, a list, tuple or dict
    of them, or a dataclass (a copy; frozen ones too). Anything else is returned as is."""
    if _pattern is None:
        return value
    scrubbed: T = _scrub(value)  # the same shape as `value`, its strings redacted
    return scrubbed


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_scrub(v) for v in value)
    if isinstance(value, dict):
        return {_scrub(k): _scrub(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {f.name: _scrub(getattr(value, f.name)) for f in dataclasses.fields(value)
                   if f.init}
        return dataclasses.replace(value, **changes)
    return value


# -- reading them -------------------------------------------------------------------------

def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines: `#` starts a comment line, blank lines are skipped, `export ` before
    a key is allowed, a value may be in single or double quotes (taken as written inside
    them). A mistake is a ConfigError naming the file and line; the value is never shown."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(path, f"cannot read the env_file: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(path, "the env_file is not UTF-8 text") from None
    out: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep:
            raise ConfigError(path, "a line must be KEY=VALUE (the value is not shown)",
                              line=number)
        if not _KEY.match(key):
            # The key is not shown: a line this wrong may be a value pasted on its own.
            raise ConfigError(path, "bad key: a key is letters, digits and _, not starting "
                              "with a digit (the line is not shown)", line=number)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif value[:1] in ("'", '"'):
            raise ConfigError(path, f"the value of {key} has an unclosed quote", line=number)
        out[key] = value
    return out


@dataclass(frozen=True)
class Environment:
    """The environment of a service or model as it reaches its node: every value, and which
    keys hold secrets (from the env_file or `${NAME}`)."""

    values: dict[str, str] = field(default_factory=dict)
    secret: frozenset[str] = frozenset()

    def shown(self) -> dict[str, str]:
        """The values as they may be shown: each secret one `***`."""
        return {k: MASK if k in self.secret else v for k, v in self.values.items()}

    def digest(self) -> str:
        """A fingerprint of the secrets (their names and values; sha256, 16 hex digits), ""
        when there are none: a service's unit carries it (SECRETS_DIGEST), so a changed
        secret changes the unit, which `saf up` then rewrites and restarts and `saf status`
        reports as a changed env, without the values leaving saf."""
        if not self.secret:
            return ""
        text = "\0".join(f"{k}={self.values[k]}" for k in sorted(self.secret))
        return hashlib.sha256(("saf-secrets\0" + text).encode()).hexdigest()[:16]


def reference(value: str) -> str | None:
    """The NAME of a value written `${NAME}`, else None."""
    match = _REFERENCE.match(value)
    return match.group(1) if match else None


def environment(env: Mapping[str, str], env_file: Path | None = None, *,
                source: Mapping[str, str] | None = None,
                missing: Any = None) -> Environment:
    """The env_file's values, then `env`'s over them; a value `${NAME}` is NAME from
    `source` (saf's own environment by default). Every secret is registered. `missing(key,
    name)` gives the error for a `${NAME}` that is not set (a KeyError naming it otherwise)."""
    source = os.environ if source is None else source
    values: dict[str, str] = {}
    secret: set[str] = set()
    if env_file is not None:
        values.update(read_env_file(env_file))
        secret.update(values)
    for key, value in env.items():
        name = reference(value)
        if name is None:
            values[key] = value
            secret.discard(key)
            continue
        if name not in source:
            if missing is not None:
                raise missing(key, name)
            raise KeyError(name)
        values[key] = source[name]
        secret.add(key)
    register(values[k] for k in secret)
    return Environment(values, frozenset(secret))


def env_file_text(env: Environment) -> str:
    """The text of the file that carries `env` to its node (mode FILE_MODE), one KEY="VALUE"
    a line as systemd's EnvironmentFile and `set -a; . FILE` both read it: the value in
    double quotes with `\\`, `"`, `$` and a backquote escaped. A value holding a newline is
    refused (ValueError naming the key, never the value): neither reader takes one."""
    lines = []
    for key, value in env.values.items():
        if "\n" in value or "\r" in value:
            raise ValueError(f"the value of {key} holds a line break, which an environment "
                             "file cannot carry")
        escaped = re.sub(r'([\\"$`])', r"\\\1", value)
        lines.append(f'{key}="{escaped}"\n')
    return "".join(lines)
