"""Benchmark: a recipe upload of a big file, by rsync over saf's connection and by SFTP.

One OpenSSH sshd on loopback. A file of --size-mb random bytes is uploaded by an `upload`
step three times per way of sending: the first upload (nothing there), a rerun with nothing
changed, and a rerun after --changed-mb in the middle of the file was rewritten. SFTP is made
to happen by hiding local rsync from the upload kind, exactly as on a machine without it.

    python tests/perf/bench_upload.py [--size-mb 200] [--changed-mb 1]

Prints each wall time (the whole step on one node: facts, decision, transfer) and the bytes
sent: rsync's own count, or the whole file for SFTP. A first upload goes over SFTP either way
(no old copy for a delta to start from). Loopback has no bandwidth limit, so the gain shown is
the least one: on a real link, SFTP's whole-file resend costs size/bandwidth more.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import saf.recipe.kinds.upload as upload_kind  # noqa: E402
from saf.connect.rsync import local_rsync  # noqa: E402
from saf.fleet import Fleet  # noqa: E402
from saf.inventory import load_inventory  # noqa: E402
from saf.recipe import load_recipe  # noqa: E402
from saf.recipe.events import NodeStepFinished  # noqa: E402
from saf.recipe.prepare import prepare  # noqa: E402
from saf.recipe.runner import Runner  # noqa: E402
from tests.helpers.servers import SSHD, ClientKeys, OpenSSHServer, write_inventory  # noqa: E402


async def upload(inventory: Path, recipe: Path) -> tuple[float, NodeStepFinished]:
    events: list = []
    started = time.perf_counter()
    async with Fleet(load_inventory(inventory)) as fleet:
        prepared = await prepare(load_recipe(recipe), fleet, {}, None)
        status = await Runner(prepared, fleet, events.append, run_id="bench").run()
    took = time.perf_counter() - started
    result = [e for e in events if isinstance(e, NodeStepFinished)][-1]
    if status != "ok":
        raise SystemExit(f"upload failed: {result.message} {result.tail}")
    return took, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--changed-mb", type=int, default=1)
    args = parser.parse_args()
    if not SSHD:
        raise SystemExit("needs OpenSSH's sshd (apt-get install openssh-server)")
    real_rsync = local_rsync()
    if real_rsync is None:
        raise SystemExit("needs rsync (apt-get install rsync)")
    with tempfile.TemporaryDirectory(prefix="saf-bench-upload-") as folder:
        root = Path(folder)
        keys = ClientKeys(root / "operator")
        server = OpenSSHServer(root / "sshd", keys)
        try:
            inventory = write_inventory(root / "saf.toml", keys, [
                {"name": "node", "host": "127.0.0.1", "port": server.port}])
            big = root / "big.bin"
            with big.open("wb") as f:
                for _ in range(args.size_mb):
                    f.write(os.urandom(1 << 20))
            recipes = {}
            for way in ("rsync", "sftp"):
                recipes[way] = root / f"{way}.toml"
                recipes[way].write_text(
                    f'[[steps]]\nname = "big"\nkind = "upload"\nsrc = "{big}"\n'
                    f'dest = "{root}/remote-{way}/big.bin"\n')

            def use(way: str) -> None:
                upload_kind.local_rsync = (lambda: real_rsync) if way == "rsync" \
                    else (lambda: None)

            figures: dict[str, dict[str, str]] = {"rsync": {}, "sftp": {}}
            for phase in ("first upload", "nothing changed", f"{args.changed_mb} MB changed"):
                if phase.endswith("changed") and phase != "nothing changed":
                    with big.open("r+b") as f:
                        f.seek(args.size_mb // 2 << 20)
                        f.write(os.urandom(args.changed_mb << 20))
                for way in ("rsync", "sftp"):
                    use(way)
                    upload_kind._hash_cache.clear()  # as in a fresh `saf run`
                    took, result = asyncio.run(upload(inventory, recipes[way]))
                    wire = re.search(r"\((\d+) bytes on the wire\)", result.message)
                    note = f" ({int(wire.group(1)) / 1e6:.1f} MB sent)" if wire else \
                        f" ({big.stat().st_size / 1e6:.1f} MB sent)" \
                        if result.status == "changed" else ""
                    figures[way][phase] = f"{took:6.2f} s {result.status}{note}"
            for way in ("rsync", "sftp"):
                remote = root / f"remote-{way}" / "big.bin"
                assert remote.read_bytes() == big.read_bytes(), f"{way}: the copy differs"
        finally:
            server.stop()
    print(f"upload of a {args.size_mb} MB file to one node (OpenSSH sshd on loopback), "
          f"{os.cpu_count()} cores")
    phases = list(figures["rsync"])
    print(f"{'':8}" + "".join(f"{p:>34}" for p in phases))
    for way in ("rsync", "sftp"):
        print(f"{way:8}" + "".join(f"{figures[way][p]:>34}" for p in phases))


if __name__ == "__main__":
    main()
