"""The Ray dashboard's HTTP API, reached through an SSH port forward to the head (nothing
needs exposing), read with httpx. Every answer is checked before it is used
(saf.ray.status builds typed values from it). Every answer is read through saf.http_read:
at most `LIMIT` bytes, the whole exchange within `deadline` seconds.

Two failures are told apart: nothing answering HTTP there (`DashboardSilent`: refused, reset,
timed out), and something answering as Ray's dashboard does not (an error status, or a body
that is not JSON: another program on the port, a proxy's login page). The second says what
answered: the status, the content type and the first bytes, escaped and cut short, since
whatever listens there wrote them."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from saf.connect.base import Forward
from saf.errors import RayError
from saf.untrusted import shown

if TYPE_CHECKING:  # httpx is imported where the dashboard is opened, once the head answered:
    from saf import http_read  # saf ray and saf doctor read this module before that

PEEK = 120  # characters of an unexpected answer's body that an error shows


class DashboardSilent(RayError):
    """Nothing answered HTTP at the dashboard's address."""


def described(answer: http_read.Answer) -> str:
    """What answered, for a person: `HTTP 200, text/html, 5120 bytes: "<!doctype html>…"`."""
    kind = shown(answer.content_type or "no content type", 80)
    size = len(answer.body)
    first = shown(answer.body[:PEEK * 4].decode("utf-8", "replace"), PEEK)
    return f"HTTP {answer.status}, {kind}, {size} bytes" + (f': "{first}"' if size else "")


# The largest answer saf reads: the state API lists at most 1000 nodes (`limit` below), about
# 2 KB each, so 64 MiB leaves room for a big cluster's jobs list and still bounds a bad one.
LIMIT = 64 * 1024 * 1024


class Dashboard:
    """A small client of the endpoints saf reads: the state API's nodes, the cluster's
    resource use, and the job submission API."""

    def __init__(self, base_url: str, *, timeout: float = 10.0, url: str | None = None,
                 deadline: float = 60.0) -> None:
        from saf.http_read import httpx

        self.base_url = base_url
        self.deadline = deadline  # one whole request and answer; `timeout` is between reads
        self.url = url or base_url  # what a person would open (the head's own address)
        self.http = httpx.AsyncClient(base_url=base_url, timeout=timeout)

    async def close(self) -> None:
        await self.http.aclose()

    async def _request(self, method: str, path: str, **kw: Any) -> http_read.Answer:
        from saf import http_read
        from saf.http_read import httpx

        try:
            async with asyncio.timeout(self.deadline):
                return await http_read.request(self.http, method, path, limit=LIMIT, **kw)
        except TimeoutError:
            raise DashboardSilent(f"the Ray dashboard at {self.url} did not answer {path} "
                                  f"within {self.deadline:g} s") from None
        except http_read.TooLarge as exc:
            raise RayError(f"{self.url} answered {path} with {exc}: not an answer Ray's "
                           "dashboard sends") from None
        except httpx.HTTPError as exc:
            raise DashboardSilent(f"the Ray dashboard at {self.url} did not answer "
                                  f"({type(exc).__name__}: {str(exc) or 'no detail'})") from None

    async def _json(self, method: str, path: str, **kw: Any) -> Any:
        answer = await self._request(method, path, **kw)
        if answer.status >= 400:
            raise RayError(f"{self.url} answered {path} with {described(answer)}")
        try:
            return json.loads(answer.body)
        except ValueError:
            raise RayError(f"{self.url} answered {path} with {described(answer)}, "
                           "not the JSON Ray's dashboard sends") from None

    async def nodes(self) -> Any:
        return await self._json("GET", "/api/v0/nodes", params={"limit": 1000})

    async def cluster_status(self) -> Any:
        return await self._json("GET", "/api/cluster_status")

    async def version(self) -> Any:
        return await self._json("GET", "/api/version")

    async def jobs(self) -> Any:
        return await self._json("GET", "/api/jobs/")

    async def job(self, job_id: str) -> Any:
        return await self._json("GET", f"/api/jobs/{job_id}")

    async def job_logs(self, job_id: str) -> Any:
        return await self._json("GET", f"/api/jobs/{job_id}/logs")

    async def submit(self, body: dict[str, Any]) -> Any:
        return await self._json("POST", "/api/jobs/", json=body)

    async def stop_job(self, job_id: str) -> Any:
        return await self._json("POST", f"/api/jobs/{job_id}/stop")

    async def has_package(self, uri_path: str) -> bool:
        return (await self._request("GET", f"/api/packages/{uri_path}")).status == 200

    async def put_package(self, uri_path: str, data: bytes) -> None:
        answer = await self._request("PUT", f"/api/packages/{uri_path}", content=data)
        if answer.status >= 400:
            raise RayError(f"the Ray dashboard refused the working directory "
                           f"({described(answer)})")


def dashboard_target(inventory_host: str, bind: str) -> str:
    """Where the forward reaches on the head: its loopback when the dashboard listens on all
    addresses or on loopback, else the address it listens on."""
    return "127.0.0.1" if bind in ("", "0.0.0.0", "::", "localhost") else bind


def shown_host(head_host: str, bind: str) -> str:
    """The address a person would open: the one the dashboard listens on, or the head's own
    when it listens on all addresses."""
    return head_host if bind in ("", "0.0.0.0", "::") else bind


OpenForward = Callable[[int, str], Awaitable[Forward]]
"""open(remote_port, remote_host) -> a forward to it as the head sees it."""


@contextlib.asynccontextmanager
async def through_forward(open_forward: OpenForward, head_host: str, port: int, bind: str,
                          *, request_timeout: float = 10.0) -> AsyncIterator[Dashboard]:
    """A Dashboard client reaching the head's dashboard (`port`, listening on `bind`) through
    an SSH forward that `open_forward` opens; the client and the forward close on leaving.
    `request_timeout` bounds each of the client's HTTP requests, not the opening."""
    forward = await open_forward(port, dashboard_target(head_host, bind))
    client = Dashboard(f"http://127.0.0.1:{forward.local_port}", timeout=request_timeout,
                       url=f"http://{shown_host(head_host, bind)}:{port}")
    try:
        yield client
    finally:
        await client.close()
        await forward.close()
