"""Where speed-test results are kept: one JSON file per run in saf's state folder
(`<state>/net/<run>.json`, the run id of the recipe run that measured it), written whole under
a temporary name and renamed into place, so a reader (the cockpit, `saf net show`) never sees
half a file, even while a test is filling it in."""

from __future__ import annotations

import json
from pathlib import Path

from saf import paths
from saf.net.results import NetResult, ResultError


def net_dir() -> Path:
    return paths.state_dir() / "net"


def path_of(run: str, folder: Path | None = None) -> Path:
    return (folder or net_dir()) / f"{run}.json"


def save(result: NetResult, folder: Path | None = None) -> Path:
    folder = paths.private_dir(folder or net_dir())
    final = path_of(result.run, folder)
    paths.replace_atomically(final, json.dumps(result.to_json(), indent=1).encode(),
                             mode=0o600)
    return final


def load(path: Path) -> NetResult:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ResultError(f"{path}: no such speed-test result") from None
    except (OSError, ValueError) as exc:
        raise ResultError(f"{path}: cannot be read ({exc})") from None
    return NetResult.from_json(data, str(path))


def list_results(folder: Path | None = None, *, cluster: str | None = None
                 ) -> list[NetResult]:
    """Every readable result, oldest first (a damaged file is left out, not fatal)."""
    folder = folder or net_dir()
    out = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            result = load(path)
        except ResultError:
            continue
        if cluster is None or result.cluster == cluster:
            out.append(result)
    out.sort(key=lambda r: (r.started, r.run))
    return out


def find(run: str, folder: Path | None = None, *, cluster: str | None = None) -> NetResult:
    """A result by run id, a unique prefix of one, `last` or `previous` (the one before)."""
    found = list_results(folder, cluster=cluster)
    if not found:
        where = f" of cluster {cluster}" if cluster else ""
        raise ResultError(f"no speed-test results{where} yet (run `saf net test`)")
    if run in ("last", "previous"):
        index = -1 if run == "last" else -2
        if len(found) < -index:
            raise ResultError("only one speed-test result so far: nothing before it")
        return found[index]
    matches = [r for r in found if r.run == run] or [r for r in found if r.run.startswith(run)]
    if len(matches) != 1:
        raise ResultError(f"{'no' if not matches else 'more than one'} speed-test result "
                          f"matches {run!r} (see `saf net runs`)")
    return matches[0]
