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
    jump: Text | None = None  # saf.inventory.jumps reads it
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
    # The jump host: another node's name, `[user@]host[:port]` hops (ProxyJump's form,
    # comma-separated), or "none"; saf.inventory.jumps reads it.
    jump: Text | None = None
    vars: dict[str, Any] = {}


# -- the declared cluster (docs/inventory.md "The declared cluster"; saf.up.declared) ---

Scalar = Annotated[str | bool | int | float, Meta(description="a string, number or boolean")]
# An engine saf.inference.engines knows, or auto (tests/test_declared.py keeps them equal).
EngineName = Literal["auto", "vllm", "mlx", "llama-server", "llama-cpp-python"]
Restart = Literal["always", "on-failure", "no"]
# A CPU list as taskset and systemd's CPUAffinity read it: 0-7, 0,2,4 or 0-3,8-11.
CpuList = Annotated[str, Meta(pattern=r"^\d+(-\d+)?(,\d+(-\d+)?)*$",
                              description="a CPU list such as \"0-7\" or \"0,2,4-6\"")]
Index = Annotated[int, Meta(ge=0, le=1023)]
Env = Annotated[dict[str, str], Meta(description='a table of NAME = "value" (or "${NAME}")')]


class UpStepTable(Struct, forbid_unknown_fields=True):
    recipe: Text  # a recipe's name or file (saf.recipe.library.find)
    vars: Annotated[dict[str, Scalar], Meta(description="a table of name = value")] = {}
    on: Text = "all"  # node selector (saf.select), narrowing the recipe's own


class UpTable(Struct, forbid_unknown_fields=True):
    steps: Annotated[list[UpStepTable], Meta(description="an array of [[up.steps]] tables")
                     ] = []


class RayTable(Struct, forbid_unknown_fields=True):
    head: Text | None = None  # a node's name; default: the node with role head
    port: Port = 6379  # the GCS port on the head
    dashboard_port: Port = 8265
    python: Text | None = None  # default: each node's own python
    # Ray resources by node selector: { "tag:gpu" = { GPU = 1 } }.
    resources: Annotated[dict[str, dict[str, Annotated[float, Meta(ge=0)]]], Meta(
        description='a table of selector = { RESOURCE = amount }')] = {}
    persist: bool = False  # run under the node's init system, kept across reboots
    temp_dir: Text | None = None


class PartTable(Struct, forbid_unknown_fields=True):
    """What services and models share: where, environment and pinning."""

    name: Text
    env: Env = {}
    env_file: Text | None = None  # on the operator's machine, relative to saf.toml
    cpus: CpuList | None = None  # pinned to these CPUs
    numa: Index | None = None  # pinned to this NUMA node's CPUs and memory
    gpus: list[Index] | None = None  # CUDA_VISIBLE_DEVICES or the vendor's equivalent


class ServiceTable(PartTable, forbid_unknown_fields=True, kw_only=True):
    on: Text  # node selector: the service runs on each node it names
    command: Text
    workdir: Text | None = None
    after: list[Text] = []  # other services' names, "ray", "model:NAME"
    restart: Restart = "on-failure"
    user: Text | None = None
    # Proof that it works: a URL (http:// or https://) that must answer 2xx, or a command
    # run on the node that must exit 0.
    check: Text | None = None


class ModelTable(PartTable, forbid_unknown_fields=True, kw_only=True):
    model: Text  # a GGUF file, a Hugging Face id or a folder, as the node sees it
    engine: EngineName = "auto"
    on: Text | None = None  # node selector: one server on each node it names
    placement: Literal["auto"] | None = None  # or saf places the replicas by memory
    replicas: Annotated[int, Meta(ge=1, le=64)] | None = None  # with placement = "auto"
    port: Port
    args: list[str] = []  # more arguments for the engine
    ctx_size: Annotated[int, Meta(ge=1, le=16_777_216)] | None = None
    # Kept by the node's init system as service model-NAME (saf's supervisor where there is
    # none); false: started detached, not started again when it dies.
    persist: bool = True


class InventoryFile(Struct, forbid_unknown_fields=True):
    cluster: ClusterTable = field(default_factory=ClusterTable)
    defaults: DefaultsTable = field(default_factory=DefaultsTable)
    nodes: Annotated[list[NodeTable], Meta(description="[[nodes]] tables")] = []
    # The declared cluster (saf.up.declared reads these, checked against each other).
    up: UpTable | None = None
    ray: RayTable | None = None
    services: Annotated[list[ServiceTable], Meta(description="[[services]] tables")] = []
    models: Annotated[list[ModelTable], Meta(description="[[models]] tables")] = []
    # Tables owned by other parts of saf; they validate their own contents (kept raw).
    signals: Any = None
    cockpit: Any = None
