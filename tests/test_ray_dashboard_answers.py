"""`saf ray status` when something other than Ray's dashboard answers on the dashboard's port
(issue 22 item 25): an HTTP 200 with a web page was reported as "Ray is not running ...
nothing answers". A small real HTTP server on loopback stands on the head's dashboard port;
the head is a loopback SSH node with no Ray, reached through the same forward `saf ray
status` always uses."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.helpers.servers import AsyncsshServers, ClientKeys, free_port, write_inventory

# What a port's other tenant may send: a page with a terminal escape and line breaks in it,
# longer than any error should quote.
PAGE = b"<!doctype html>\r\n<title>\x1b]0;owned\x07Login</title>\n" + b"x" * 100_000


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass
class Head:
    env: dict[str, str]
    temp_dir: Path

    def saf(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "saf", *args], env=self.env,
                              capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Head]:
    root = tmp_path_factory.mktemp("raydash")
    keys = ClientKeys(root / "operator")
    servers = AsyncsshServers(root, keys, ["alpha"])
    try:
        inventory = write_inventory(root / "saf.toml", keys, [
            {"name": "alpha", "host": "127.0.0.1", "port": servers.port("alpha"),
             "roles": ["head"]}])
        env = {**os.environ, "SAF_INVENTORY": str(inventory), "COLUMNS": "200",
               "SAF_STATE_DIR": str(root / "state"), "SAF_CONFIG_DIR": str(root / "config")}
        yield Head(env, root / "no-ray")
    finally:
        servers.stop()


@pytest.fixture
def page_server() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_a_web_page_on_the_dashboard_port_is_said_not_called_silence(head: Head,
                                                                      page_server: int) -> None:
    done = head.saf("ray", "status", "--temp-dir", str(head.temp_dir),
                    "--dashboard-port", str(page_server))
    said = done.stderr
    assert done.returncode == 1, done.stdout + said
    assert "nothing answers" not in said, said
    assert "Ray is not running on the head alpha, and another program has its dashboard's " \
           f"port: http://127.0.0.1:{page_server} answered /api/version with HTTP 200, " \
           f"text/html; charset=utf-8, {len(PAGE)} bytes: " in said, said
    # The first bytes, escaped: the page's escape and line breaks cannot reach the terminal.
    assert r'"<!doctype html>\r\n<title>\x1b]0;owned\x07Login</title>\nxxx' in said, said
    assert "\x1b" not in said
    assert "\x07" not in said
    assert "x" * 200 not in said  # cut short
    assert "saf run ray-up --var dashboard_port=PORT" in said
    assert "Traceback" not in said


def test_a_port_where_nothing_listens_is_still_not_running(head: Head) -> None:
    done = head.saf("ray", "status", "--temp-dir", str(head.temp_dir),
                    "--dashboard-port", str(free_port()))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Ray is not running on the head alpha (nothing answers at" in done.stderr
    assert "saf run ray-up" in done.stderr
    assert "Traceback" not in done.stderr
