"""What `saf serve`'s hub tells its cockpits, as typed messages (saf.serve.wire carries them).

The hub's first message is its `HubHello`; every later JSON message is a `HubMessage`, a
tagged union on its `msg` field, decoded once at the client's gate (`decode_message`) and
dispatched by type. A message the client does not understand (an unknown `msg`, a field of
the wrong type) is a `BadMessage` the client counts and passes over: it never ends the link.
Fields a newer hub adds are ignored.
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import Struct

from saf.recording import NodeHeader
from saf.signals.events import SourceState


class HubHello(Struct):
    """The hub's first message: the cluster a cockpit shows (or why it is refused)."""

    saf_hub: int
    error: str | None = None  # set: the hub refused this cockpit, and nothing else follows
    cluster: str = "saf"
    nodes: list[NodeHeader] = []
    inventory: str | None = None
    readonly: str | None = None
    interval: float = 1.0
    signals: str | None = None
    signals_error: str | None = None


class _HubMessage(Struct, tag_field="msg"):
    pass


class AgentEvent(_HubMessage, tag="agent"):
    """An agent event exactly as a recording writes it (saf.recording.event_line)."""

    event: dict[str, Any]


class Reply(_HubMessage, tag="reply"):
    """The answer to request `req` (None: a request whose id was not understood)."""

    req: int | None
    ok: bool
    message: str = ""


class RecipeEvent(_HubMessage, tag="recipe_event"):
    """One event of recipe run `req` (saf.recipe.events, as JSON)."""

    req: int
    event: dict[str, Any]


class AskForPassword(_HubMessage, tag="ask_password"):
    """Recipe run `req` needs a password: answer with requests.Password(req, ask)."""

    req: int
    ask: int
    prompt: str = "password"


class SignalState(_HubMessage, tag="signal_state"):
    """The hub's signal subscriber connected to, or lost, `endpoint`
    (saf.signals.events.SignalSourceState)."""

    endpoint: str
    state: SourceState
    message: str = ""


HubMessage = AgentEvent | Reply | RecipeEvent | AskForPassword | SignalState


class BadMessage(Exception):
    """A message from the hub the client does not understand."""


_decoder = msgspec.json.Decoder(HubMessage)


def decode_message(body: bytes) -> HubMessage:
    """The typed message in `body` (a JSON payload of saf.serve.wire); BadMessage for JSON
    that is not a hub message, msgspec.DecodeError for a body that is not JSON at all."""
    try:
        return _decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise BadMessage(f"a message from the hub not understood: {exc}") from None


def decode_hello(data: dict[str, Any]) -> HubHello:
    """The hub's hello in `data`, or BadMessage."""
    try:
        return msgspec.convert(data, HubHello)
    except msgspec.ValidationError as exc:
        raise BadMessage(f"the hub's hello is not understood: {exc}") from None


def event_text(line: str) -> str:
    """An agent event's recorded line as the text of an `AgentEvent` message, without decoding
    it again (the hub keeps and relays lines as text)."""
    return '{"msg":"agent","event":' + line.rstrip("\n") + "}"
