"""Run inside a fresh network namespace (`unshare --net python -m tests.helpers.web_netns_probe
FOLDER`): give it a LAN-like address (10.77.0.1 on a veth pair of its own), start
`saf serve --web 0.0.0.0:8000 --web-host tablet.example` there, send it real HTTP and websocket
requests with chosen Host and Origin headers, print what each got as one JSON line, and stop
saf serve. Binding beyond loopback is safe here: the namespace has no way out.

Used by tests/test_serve_web.py (DNS rebinding on a bind beyond loopback)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

ADDRESS = "10.77.0.1"
PORT = 8000


def _network() -> None:
    for argv in (["ip", "link", "set", "lo", "up"],
                 ["ip", "link", "add", "sa0", "type", "veth", "peer", "name", "sa1"],
                 ["ip", "addr", "add", f"{ADDRESS}/24", "dev", "sa0"],
                 ["ip", "link", "set", "sa0", "up"], ["ip", "link", "set", "sa1", "up"]):
        subprocess.run(argv, check=True)


async def _probe() -> dict[str, int]:
    got: dict[str, int] = {}
    page = f"http://{ADDRESS}:{PORT}/"
    cases = {
        "page, Host evil": {"Host": f"evil.example:{PORT}"},
        "page, Host the address": {"Host": f"{ADDRESS}:{PORT}"},
        "page, Host a --web-host name": {"Host": f"tablet.example:{PORT}"},
        "page, Host localhost": {"Host": f"localhost:{PORT}"},
    }
    async with aiohttp.ClientSession() as session:
        for name, headers in cases.items():
            async with session.get(page, headers=headers) as answer:
                got[name] = answer.status
        sockets = {
            "ws, Host and Origin evil": {"Host": f"evil.example:{PORT}",
                                         "Origin": f"http://evil.example:{PORT}"},
            "ws, Origin evil": {"Origin": f"http://evil.example:{PORT}"},
            "ws, Host and Origin the address": {"Origin": f"http://{ADDRESS}:{PORT}"},
        }
        for name, headers in sockets.items():
            try:
                ws = await session.ws_connect(page + "ws?width=80&height=24", headers=headers)
            except aiohttp.WSServerHandshakeError as refused:
                got[name] = refused.status
            else:
                got[name] = 101
                await ws.close()
    return got


def main(folder: Path) -> None:
    _network()
    inventory = folder / "saf.toml"
    inventory.write_text('[cluster]\nname = "lan"\n[[nodes]]\nname = "a"\n'
                         'host = "127.0.0.1"\nport = 1\n')
    log_path = folder / "saf.log"
    env = {**os.environ, "SAF_STATE_DIR": str(folder / "state")}
    with open(log_path, "w") as log:
        saf = subprocess.Popen(
            [sys.executable, "-m", "saf", "-i", str(inventory), "serve", "--web",
             f"0.0.0.0:{PORT}", "--web-host", "tablet.example"],
            env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.monotonic() + 90
        while "web: http" not in log_path.read_text():
            if saf.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("saf serve --web did not start:\n" + log_path.read_text())
            time.sleep(0.2)
        print(json.dumps(asyncio.run(_probe())), flush=True)
    finally:
        saf.send_signal(signal.SIGINT)
        try:
            saf.wait(30)
        except subprocess.TimeoutExpired:
            saf.kill()
            saf.wait()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
