"""What a cockpit asks of `saf serve`'s hub, as typed messages (saf.serve.wire carries them).

A client's first message is its `ClientHello`; every later one is a `Request`, a tagged union
on its `op` field, decoded once at the hub's gate (`decode_request`) and dispatched by type.
A request that is not understood (an unknown `op`, a field of the wrong type, a pid below 1)
is a `BadRequest` the hub answers with an error reply and counts: it never ends the hub nor,
unlike a body that is not JSON at all, the client's connection. Fields a newer client adds
are ignored, as before.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

Positive = Annotated[int, Meta(ge=1)]
Index = Annotated[int, Meta(ge=0)]


class ClientHello(Struct):
    """`{"hello": 1, "token": str | null}`: the token names the session's grant."""

    hello: int
    token: str | None = None


class _Request(Struct, tag_field="op"):
    pass


class Signals(_Request, tag="signals"):
    """Send me the signal stream (and each source's state) from now on."""


class SignalNode(_Request, tag="signal"):
    """Send `signal` to process `pid` on `node`; answered by a reply."""

    req: int
    node: str
    pid: Positive
    signal: str


class RestartPart(_Request, tag="restart"):
    """Restart declared part `name` (kind "service" or "model", on `port`) on `node`."""

    req: int
    node: str
    kind: str
    name: str
    port: Index = 0


class BringPart(_Request, tag="part"):
    """Bring declared part `name` (a node, ray, a service or a model; saf.up.part) on `node`
    up or down, as that part of `saf up` / `saf down`; answered as a recipe run is: its
    events, password asks and a reply."""

    req: int
    verb: Literal["up", "down"]
    kind: Literal["node", "ray", "service", "model"]
    node: str
    name: str


class RunRecipe(_Request, tag="recipe"):
    """Run a recipe on the hub's fleet; answered by its events, password asks and a reply."""

    req: int
    recipe: str
    overrides: dict[str, str] = {}
    selector: str | None = None
    check: bool = False
    start_step: Index = 0
    resumed_from: str | None = None


class Password(_Request, tag="password"):
    """The answer to the hub's `ask_password` number `ask` of run `req` (null: none given)."""

    req: int
    ask: int
    password: str | None = None


class Cancel(_Request, tag="cancel"):
    """Stop run `req`."""

    req: int


Request = Signals | SignalNode | RestartPart | BringPart | RunRecipe | Password | Cancel


class BadRequest(Exception):
    """A request the hub does not understand: `reason` (unknown_op, malformed) for counting,
    `req` (the request's id when it had a usable one) for the error reply."""

    def __init__(self, reason: str, message: str, req: int | None) -> None:
        super().__init__(message)
        self.reason, self.req = reason, req


def decode_hello(data: dict[str, Any]) -> ClientHello:
    """The client's hello, or BadRequest."""
    try:
        return msgspec.convert(data, ClientHello)
    except msgspec.ValidationError as exc:
        raise BadRequest("malformed", f"a hello not understood: {exc}", None) from None


def decode_request(data: dict[str, Any]) -> Request:
    """The typed request in `data` (a JSON object from saf.serve.wire), or BadRequest."""
    try:
        request: Request = msgspec.convert(data, Request)
    except msgspec.ValidationError as exc:
        req = data.get("req")
        req = req if isinstance(req, int) and not isinstance(req, bool) else None
        op = data.get("op")
        if not isinstance(op, str) or op not in _OPS:
            raise BadRequest("unknown_op", f"unknown request {op!r}", req) from None
        raise BadRequest("malformed", f"a {op} request not understood: {exc}", req) from None
    return request


_OPS = frozenset(str(cls.__struct_config__.tag)
                 for cls in (Signals, SignalNode, RestartPart, BringPart, RunRecipe, Password,
                             Cancel))
