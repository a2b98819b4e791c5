"""Server-sent events of an OpenAI-compatible streamed completion, read as untrusted input.

`SSEReader` turns lines into events (`data:` lines joined until a blank line; comments and
other fields ignored; `[DONE]` ends the stream). `read_chunk` checks one event's JSON by type
and range and returns what saf measures: the text it carries (a completion's `text`, a chat
`delta.content`, or a reasoning model's `delta.reasoning_content`), the usage when the server
reports it (`stream_options.include_usage`), and llama-server's own `timings`. A chunk that
is not what the API says is counted by reason in `BadLines`, never a crash. Checked against
real vLLM and llama-server streams (tests/fixtures/models/).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from saf.inference.records import BadLines

MAX_EVENT = 1024 * 1024  # one event's data; a server sending more is not answering sanely
DONE = "[DONE]"


class SSEReader:
    """Feed it lines (without their newline); it returns complete events' data."""

    def __init__(self, bad: BadLines) -> None:
        self.bad = bad
        self._data: list[str] = []
        self._size = 0
        self.done = False

    def line(self, line: str) -> str | None:
        """The data of the event this line completes, or None."""
        if line == "":
            return self._flush()
        if line.startswith(":"):
            return None  # a comment (keep-alive)
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name != "data":
            return None  # event:, id:, retry: say nothing saf measures
        self._size += len(value)
        if self._size > MAX_EVENT:
            self.bad.add("too_long")
            self._data, self._size = [], 0
            return None
        # Servers that send one chunk per line without blank lines between them (some do)
        # would otherwise have their chunks glued together: a data line that looks like a
        # whole JSON object on its own is an event of its own (read_chunk checks it; parsing
        # it here too would read every chunk twice).
        if not self._data and (value == DONE or _looks_whole(value)):
            self._size = 0
            return self._mark(value)
        self._data.append(value)
        return None

    def _flush(self) -> str | None:
        if not self._data:
            return None
        data = "\n".join(self._data)
        self._data, self._size = [], 0
        return self._mark(data)

    def _mark(self, data: str) -> str:
        if data.strip() == DONE:
            self.done = True
        return data

    def close(self) -> str | None:
        """The last event when the stream ended without a blank line."""
        return self._flush()


def _looks_whole(text: str) -> bool:
    text = text.strip()
    return text.startswith("{") and text.endswith("}")


@dataclass(frozen=True)
class Chunk:
    text: str  # the generated text this chunk carries ("" for a role-only first delta)
    finish_reason: str | None = None
    completion_tokens: int | None = None  # from `usage`
    prompt_tokens: int | None = None
    timings: dict[str, float] | None = None  # llama-server's, when it sends them
    model: str | None = None


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10**9:
        return None
    return value


def _timings(value: Any, bad: BadLines) -> dict[str, float] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        bad.add("bad_timings")
        return None
    kept = {}
    for key, number in value.items():
        if isinstance(key, str) and isinstance(number, int | float) \
                and not isinstance(number, bool) and math.isfinite(number) and number >= 0:
            kept[key] = float(number)
    return kept or None


def read_chunk(data: str, bad: BadLines) -> Chunk | None:
    """The chunk an event's data holds, or None (counted in `bad`) when it is not valid.
    `[DONE]` is not a chunk: the caller checks for it first."""
    try:
        value = json.loads(data)
    except ValueError:
        bad.add("not_json")
        return None
    if not isinstance(value, dict):
        bad.add("bad_type")
        return None
    if "error" in value:
        bad.add("error_event")
        return None
    choices = value.get("choices")
    usage = value.get("usage")
    if not isinstance(choices, list) or (not choices and not isinstance(usage, dict)):
        bad.add("no_choices")
        return None
    text, finish = "", None
    for choice in choices:
        if not isinstance(choice, dict):
            bad.add("bad_choice")
            return None
        piece: Any = choice.get("text")
        delta = choice.get("delta")
        if piece is None and isinstance(delta, dict):
            # A reasoning model's thinking is output too (vLLM's benchmark counts it).
            piece = delta.get("content") or delta.get("reasoning_content") \
                or delta.get("reasoning")
        if piece is None:
            piece = ""
        if not isinstance(piece, str):
            bad.add("bad_text")
            return None
        text += piece
        reason = choice.get("finish_reason")
        if isinstance(reason, str):
            finish = reason[:64]
    completion = prompt = None
    if isinstance(usage, dict):
        completion = _count(usage.get("completion_tokens"))
        prompt = _count(usage.get("prompt_tokens"))
    model = value.get("model") if isinstance(value.get("model"), str) else None
    return Chunk(text, finish, completion, prompt, _timings(value.get("timings"), bad),
                 model[:256] if model else None)


@dataclass(frozen=True)
class ModelInfo:
    id: str
    root: str | None = None
    max_model_len: int | None = None
    owned_by: str | None = None


def read_models(data: Any, bad: BadLines) -> list[ModelInfo]:
    """The models of a `GET /v1/models` answer (already parsed JSON); bad entries counted."""
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        bad.add("bad_models")
        return []
    found = []
    for item in data["data"]:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) \
                or not item["id"] or len(item["id"]) > 1024:
            bad.add("bad_model")
            continue
        root = item.get("root") if isinstance(item.get("root"), str) else None
        owner = item.get("owned_by") if isinstance(item.get("owned_by"), str) else None
        found.append(ModelInfo(item["id"], root, _count(item.get("max_model_len")), owner))
    return found
