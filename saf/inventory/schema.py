"""The shape of `saf.toml` as a person writes it, declared once (decoded by saf.config_model).

These Structs say what each table may hold, of which type and range; saf.inventory.load then
applies the defaults and the checks that are not about shape (names, duplicates, one head) and
builds the frozen model of saf.inventory.model.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import Meta, Struct, field

Text = Annotated[str, Meta(min_length=1, pattern=r"\S")]
# A port is checked as saf.numbers.parse_port would read it: a whole number 1-65535.
Port = Annotated[int, Meta(ge=1, le=65535)]
# Seconds: from a LAN's fastest to an hour.
Timeout = Annotated[float, Meta(ge=0.1, le=3600.0)]
Role = Literal["head", "worker", "control"]
Os = Literal["linux", "macos"]
Connection = Literal["ssh", "local"]


class ClusterTable(Struct, forbid_unknown_fields=True):
    name: Text = "saf"


class DefaultsTable(Struct, forbid_unknown_fields=True):
    user: Text | None = None
    port: Port | None = None
    python: Text = "python3"
    identity: Text | None = None
    known_hosts: Text | None = None
    ssh_config: Text | None = None
    connect_timeout: Timeout = 10.0
    vars: dict[str, Any] = {}


class NodeTable(Struct, forbid_unknown_fields=True):
    name: Text
    host: Text
    user: Text | None = None
    port: Port | None = None
    roles: list[Role] = []
    tags: list[Text] = []
    python: Text | None = None
    os: Os | None = None
    connection: Connection | None = None
    identity: Text | None = None
    known_hosts: Text | None = None
    ssh_config: Text | None = None
    connect_timeout: Timeout | None = None
    vars: dict[str, Any] = {}


class InventoryFile(Struct, forbid_unknown_fields=True):
    cluster: ClusterTable = field(default_factory=ClusterTable)
    defaults: DefaultsTable = field(default_factory=DefaultsTable)
    nodes: Annotated[list[NodeTable], Meta(description="[[nodes]] tables")] = []
    # Tables owned by other parts of saf; they validate their own contents (kept raw).
    signals: Any = None
    cockpit: Any = None
    ray: Any = None
