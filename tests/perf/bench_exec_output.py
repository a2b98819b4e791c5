"""`saf exec` on chatty output: MB of base64 from one node (a stock OpenSSH sshd on loopback)
to /dev/null, measured in one run as
  saf exec        the CLI as a person runs it (`saf -i INV exec CMD > /dev/null`)
  asyncssh        a plain asyncssh client reading the same command's stdout in 64 KiB reads
and prints wall seconds, MB/s and saf's ratio. Issue 22 item 12 measured 58.7 s for 20 MB
before saf wrote output lines itself (a Rich print per line).
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncssh

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.helpers.servers import SSHD, ClientKeys, OpenSSHServer, write_inventory  # noqa: E402


async def plain(keys: ClientKeys, port: int, command: str) -> int:
    async with asyncssh.connect("127.0.0.1", port, client_keys=[str(keys.identity)],
                                known_hosts=str(keys.known_hosts)) as conn:
        process = await conn.create_process(command, encoding=None)
        size = 0
        while chunk := await process.stdout.read(65536):
            size += len(chunk)
        await process.wait()
        return size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=20, help="MB of zeros fed to base64")
    args = parser.parse_args()
    if not SSHD:
        print("sshd is not installed: apt-get install openssh-server")
        return
    command = f"head -c {args.mb * 1_000_000} /dev/zero | base64"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        keys = ClientKeys(root / "operator")
        server = OpenSSHServer(root / "sshd", keys)
        try:
            inventory = write_inventory(root / "saf.toml", keys, [
                {"name": "n1", "host": "127.0.0.1", "port": server.port}])
            t0 = time.perf_counter()
            with open("/dev/null", "w") as sink:
                done = subprocess.run([sys.executable, "-m", "saf", "-i", str(inventory), "exec",
                                       command], stdout=sink, stderr=subprocess.PIPE, text=True)
            saf_s = time.perf_counter() - t0
            if done.returncode != 0:
                print(done.stderr)
            t0 = time.perf_counter()
            size = asyncio.run(plain(keys, server.port, command))
            plain_s = time.perf_counter() - t0
        finally:
            server.stop()
    mb = size / 1e6
    print(f"`{command}` ({mb:.1f} MB of output) from one node to /dev/null")
    print(f"  {'who':<12}{'wall s':>9}{'MB/s':>9}")
    print(f"  {'saf exec':<12}{saf_s:>9.2f}{mb / saf_s:>9.1f}   (a new process: start-up too)")
    print(f"  {'asyncssh':<12}{plain_s:>9.2f}{mb / plain_s:>9.1f}")
    print(f"  saf / asyncssh = {saf_s / plain_s:.1f}x")


if __name__ == "__main__":
    main()
