"""The declared cluster: what saf.toml says the cluster should run, checked as a whole.

saf.toml's `[up]`, `[ray]`, `[[services]]` and `[[models]]` (docs/inventory.md, "The declared
cluster") are decoded with the rest of the file (their shape: saf.inventory.schema); `declared`
turns them into the frozen model below and checks them against each other and the nodes,
each mistake an InventoryError naming the file and line:

- names: services and models each unique, valid node-name words; no service named `ray`;
- `after`: only declared services, `ray` (when [ray] is declared) or `model:NAME`; no cycle;
- every selector (`on`, [ray] resources' keys, [up] steps' `on`) valid and matching a node;
- a model has `on` or `placement = "auto"` (exactly one), and `replicas` only when placed;
- no two parts listen on one port of one node (Ray's ports on its head, the models' ports);
- each [up] step's recipe exists and takes the `vars` given (and gets those it needs).

`Declared.order()` is the order the parts are brought up in: Ray, then services and models
in the order written, each after what it names in `after`; `Declared.up_recipe()` is [up] as
a recipe of `recipe` steps for the runner. `Part.environment()` is a service's or model's
environment with its secrets marked (saf.secrets).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from saf import secrets
from saf.config_model import Source, dotted
from saf.errors import InventoryError, SafError, SelectorError
from saf.inventory.load import NAME_RE, load_inventory
from saf.inventory.model import Inventory, Node
from saf.inventory.schema import InventoryFile, PartTable
from saf.recipe import library
from saf.recipe.kinds.include import Include
from saf.recipe.model import Recipe, Step
from saf.select import needs_os, select
from saf.up.order import CycleError, topological

RAY = "ray"
MODEL_PREFIX = "model:"
# The variable that hides a GPU from a program but the ones listed, by vendor.
GPU_VARIABLES = {"nvidia": "CUDA_VISIBLE_DEVICES", "amd": "ROCR_VISIBLE_DEVICES",
                 "intel": "ZE_AFFINITY_MASK"}
Where = tuple[Any, ...]


@dataclass(frozen=True)
class Pinning:
    """Where a part's process may run: CPUs (a list such as "0-7"), a NUMA node, GPUs."""

    cpus: str | None = None
    numa: int | None = None
    gpus: tuple[int, ...] | None = None

    def gpu_environment(self, vendor: str) -> dict[str, str]:
        """The variable that limits the process to its GPUs on a node of `vendor` (nvidia,
        amd, intel); empty when no GPUs are named or the vendor has none."""
        name = GPU_VARIABLES.get(vendor)
        if self.gpus is None or name is None:
            return {}
        return {name: ",".join(map(str, self.gpus))}


@dataclass(frozen=True)
class Part:
    """What a service and a model have in common."""

    name: str
    env: Mapping[str, str]  # as written; a value "${NAME}" is NAME from saf's environment
    env_file: Path | None  # on the operator's machine (made absolute from saf.toml's folder)
    pinning: Pinning
    line: int | None
    path: Path | None  # the inventory file, for errors

    def environment(self, source: Mapping[str, str] | None = None) -> secrets.Environment:
        """The environment this part's process gets, secrets registered and marked
        (saf.secrets.Environment; its file's text: saf.secrets.env_file_text). A missing
        `${NAME}` or a bad env_file is an InventoryError naming the file and line."""
        def missing(key: str, name: str) -> InventoryError:
            return InventoryError(self.path, f"{self.name}: env {key} is ${{{name}}}, and "
                                  f"{name} is not set in saf's environment", line=self.line)
        try:
            return secrets.environment(self.env, self.env_file, source=source,
                                       missing=missing)
        except InventoryError:
            raise
        except SafError as exc:
            raise InventoryError(self.path, f"{self.name}: env_file: {exc}",
                                 line=self.line) from None


@dataclass(frozen=True)
class Service(Part):
    """A long-running program on each node `on` names, kept running by `restart`."""

    on: str = "all"
    nodes: tuple[str, ...] = ()  # what `on` names now (empty when it needs probed OSes)
    command: str = ""
    workdir: str | None = None
    after: tuple[str, ...] = ()  # part names: services, "ray", "model:NAME"
    restart: Literal["always", "on-failure", "no"] = "on-failure"
    user: str | None = None
    check: str | None = None

    @property
    def check_url(self) -> str | None:
        """The check when it is a URL to ask (it must answer 2xx)."""
        return self.check if self.check and self.check.startswith(("http://", "https://")) \
            else None

    @property
    def check_command(self) -> str | None:
        """The check when it is a command to run on the node (it must exit 0)."""
        return self.check if self.check and self.check_url is None else None

    @property
    def part(self) -> str:
        return self.name


@dataclass(frozen=True)
class Model(Part):
    """A model served on each node `on` names, or on `replicas` nodes saf chooses."""

    model: str = ""
    engine: str = "auto"
    on: str | None = None
    nodes: tuple[str, ...] = ()  # what `on` names now; empty when placed
    placement: Literal["auto"] | None = None
    replicas: int = 1
    port: int = 8000
    args: tuple[str, ...] = ()
    ctx_size: int | None = None
    persist: bool = True  # kept by the init system as service model-NAME (else detached)

    @property
    def part(self) -> str:
        return MODEL_PREFIX + self.name


@dataclass(frozen=True)
class Ray:
    """The Ray cluster: its head, ports, resources by selector, kept across reboots or not."""

    head: str
    port: int = 6379
    dashboard_port: int = 8265
    python: str | None = None
    resources: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    persist: bool = False
    temp_dir: str | None = None
    line: int | None = None

    def resources_of(self, inventory: Inventory, node: Node) -> dict[str, float]:
        """The resources declared for `node`: every selector that names it, later ones over
        earlier ones."""
        out: dict[str, float] = {}
        for selector, amounts in self.resources.items():
            if node in select(inventory, selector, allow_empty=True):
                out.update(amounts)
        return out


@dataclass(frozen=True)
class UpStep:
    """One recipe of [up]: run on the nodes `on` names, with these variables."""

    recipe: str  # a name, or a file (made absolute from saf.toml's folder)
    vars: Mapping[str, str] = field(default_factory=dict)
    on: str = "all"
    line: int | None = None


@dataclass(frozen=True)
class Declared:
    """The whole declaration of one inventory."""

    up: tuple[UpStep, ...] = ()
    ray: Ray | None = None
    services: tuple[Service, ...] = ()
    models: tuple[Model, ...] = ()
    path: Path | None = None

    @property
    def empty(self) -> bool:
        return not (self.up or self.ray or self.services or self.models)

    def part(self, name: str) -> Ray | Service | Model:
        """A part by its name in `after` and `order()`: "ray", a service's, "model:NAME"."""
        if name == RAY and self.ray is not None:
            return self.ray
        for service in self.services:
            if service.part == name:
                return service
        for model in self.models:
            if model.part == name:
                return model
        raise KeyError(name)

    def after(self) -> dict[str, tuple[str, ...]]:
        """Each part's name -> the parts it comes after, in the order written."""
        out: dict[str, tuple[str, ...]] = {RAY: ()} if self.ray is not None else {}
        out.update({s.part: s.after for s in self.services})
        out.update({m.part: () for m in self.models})
        return out

    def order(self) -> list[str]:
        """Part names in the order to bring them up (reverse it to take them down)."""
        return topological(self.after())

    def up_recipe(self) -> Recipe:
        """[up] as a recipe of `recipe` steps (saf.recipe.kinds.include), for the runner: its
        steps are put in place by saf.recipe.compose when it is prepared, and an error in
        one names saf.toml and the step's line. Step names are the recipes' (a recipe
        given twice is named `NAME #2`)."""
        steps = []
        seen: dict[str, int] = {}
        for index, up in enumerate(self.up):
            name = Include(up.recipe, {}).describe()
            seen[name] = seen.get(name, 0) + 1
            steps.append(Step(index=index, name=name if seen[name] == 1 else
                              f"{name} #{seen[name]}", kind=Include(up.recipe, dict(up.vars)),
                              on=up.on, line=up.line))
        return Recipe(name="up", description="the [up] recipes of saf.toml", vars={},
                      steps=tuple(steps), path=self.path,
                      folder=self.path.parent if self.path else None)


# -- reading it ----------------------------------------------------------------------------

def _source(inventory: Inventory, file: InventoryFile) -> Source:
    def label(where: Where) -> str | None:
        if len(where) >= 2 and where[0] in ("services", "models") and isinstance(where[1], int):
            items = file.services if where[0] == "services" else file.models
            if where[1] < len(items):
                return f"{where[0][:-1]} {items[where[1]].name!r}"
        return None

    def table(where: Where) -> str:
        return (label(where) if len(where) == 2 else None) or f"[{dotted(where)}]"

    def key(where: Where) -> str:
        name = label(where)
        return f"{name}: {dotted(where[2:])}" if name and len(where) > 2 else dotted(where)
    return Source.of_file(inventory.path, error=InventoryError, table=table, key=key)


def _nodes(inventory: Inventory, selector: str, where: Where, source: Source) -> tuple[str, ...]:
    """The nodes `selector` names; an error at `where` when it is bad or names none. A
    selector with `os:` over nodes whose OS is not declared is only checked for grammar
    (their OS is known once probed): its nodes are ()."""
    try:
        if needs_os(selector) and any(n.os is None for n in inventory.nodes):
            select(inventory, selector, allow_empty=True)
            return ()
        return tuple(n.name for n in select(inventory, selector))
    except SelectorError as exc:
        raise source.fail(where, f"{source.key(where)}: {exc}") from None


def _env_file(value: str | None, inventory: Inventory) -> Path | None:
    if value is None:
        return None
    path = Path(value).expanduser()
    if not path.is_absolute() and inventory.path is not None:
        path = inventory.path.parent / path
    return path


def _pinning(t: PartTable, where: Where, source: Source) -> Pinning:
    if t.cpus is not None and t.numa is not None:
        raise source.fail(where + ("numa",), f"{source.key(where)}: give cpus or numa, "
                          "not both")
    return Pinning(cpus=t.cpus, numa=t.numa, gpus=tuple(t.gpus) if t.gpus is not None else None)


def _name(name: str, where: Where, seen: dict[str, int], what: str, source: Source) -> None:
    if not NAME_RE.match(name):
        raise source.fail(where, f"{what} name {name!r} may hold only letters, digits, '.', "
                          "'_' and '-', and must start with a letter or digit")
    if name in seen:
        raise source.fail(where, f"two {what}s are named {name!r} (the first on line "
                          f"{source.line((where[0], seen[name])) or '?'})")
    seen[name] = where[1]


def _up(inventory: Inventory, file: InventoryFile, source: Source) -> tuple[UpStep, ...]:
    steps = []
    for i, t in enumerate(file.up.steps if file.up else []):
        where = ("up", "steps", i)
        _nodes(inventory, t.on, where + ("on",), source)
        recipe = t.recipe
        if (recipe.endswith(".toml") or "/" in recipe) and inventory.path is not None:
            recipe = str(inventory.path.parent / Path(recipe).expanduser())
        try:
            other = library.load(recipe)
        except SafError as exc:
            raise source.fail(where + ("recipe",), f"up.steps[{i}].recipe: {exc}") from None
        values = {k: ("true" if v else "false") if isinstance(v, bool) else str(v)
                  for k, v in t.vars.items()}
        for name in values:
            if name not in other.vars:
                raise source.fail(where + ("vars", name), f"up.steps[{i}].vars: recipe "
                                  f"{other.name!r} has no variable {name!r} (its [vars]: "
                                  f"{', '.join(sorted(other.vars)) or 'none'})")
        for name, var in other.vars.items():
            if var.required and name not in values:
                raise source.fail(where, f"up.steps[{i}]: recipe {other.name!r} needs "
                                  f"variable {name!r}" + (f" ({var.description})" if
                                                          var.description else "")
                                  + f": give it in vars = {{ {name} = \"...\" }}")
        steps.append(UpStep(recipe, values, t.on, source.line(where)))
    return tuple(steps)


def _ray(inventory: Inventory, file: InventoryFile, source: Source) -> Ray | None:
    t = file.ray
    if t is None:
        return None
    if t.head is not None:
        if t.head not in inventory.names:
            raise source.fail(("ray", "head"), f"ray.head: no node {t.head!r} (nodes: "
                              f"{', '.join(inventory.names)})")
        head = t.head
    elif inventory.head is not None:
        head = inventory.head.name
    else:
        raise source.fail(("ray",), "[ray] needs a head: name one (head = \"NODE\") or give "
                          "a node roles = [\"head\"]")
    if t.port == t.dashboard_port:
        raise source.fail(("ray", "dashboard_port"), f"ray.dashboard_port {t.dashboard_port} "
                          "is also ray.port")
    for selector in t.resources:
        _nodes(inventory, selector, ("ray", "resources", selector), source)
    return Ray(head=head, port=t.port, dashboard_port=t.dashboard_port, python=t.python,
               resources={k: dict(v) for k, v in t.resources.items()}, persist=t.persist,
               temp_dir=t.temp_dir, line=source.line(("ray",)))


def _services(inventory: Inventory, file: InventoryFile, source: Source
              ) -> tuple[Service, ...]:
    out = []
    seen: dict[str, int] = {}
    for i, t in enumerate(file.services):
        where = ("services", i)
        _name(t.name, where + ("name",), seen, "service", source)
        if t.name == RAY:
            raise source.fail(where + ("name",), "a service may not be named 'ray': "
                              "`after = [\"ray\"]` means the Ray cluster")
        out.append(Service(
            name=t.name, env=dict(t.env), env_file=_env_file(t.env_file, inventory),
            pinning=_pinning(t, where, source), line=source.line(where), path=inventory.path,
            on=t.on, nodes=_nodes(inventory, t.on, where + ("on",), source),
            command=t.command, workdir=t.workdir, after=tuple(t.after), restart=t.restart,
            user=t.user, check=t.check))
    return tuple(out)


def _models(inventory: Inventory, file: InventoryFile, source: Source) -> tuple[Model, ...]:
    out = []
    seen: dict[str, int] = {}
    for i, t in enumerate(file.models):
        where = ("models", i)
        _name(t.name, where + ("name",), seen, "model", source)
        if (t.on is None) == (t.placement is None):
            raise source.fail(where + (("placement",) if t.on else ()),
                              f"{source.table(where)}: give `on` (the nodes that serve it) "
                              "or `placement = \"auto\"` (saf chooses by memory), "
                              + ("not both" if t.on else "one of them"))
        if t.replicas is not None and t.placement is None:
            raise source.fail(where + ("replicas",), f"{source.key(where + ('replicas',))}: "
                              "replicas go with placement = \"auto\"; with `on`, each node it "
                              "names serves one")
        nodes = _nodes(inventory, t.on, where + ("on",), source) if t.on is not None else ()
        out.append(Model(
            name=t.name, env=dict(t.env), env_file=_env_file(t.env_file, inventory),
            pinning=_pinning(t, where, source), line=source.line(where), path=inventory.path,
            model=t.model, engine=t.engine, on=t.on, nodes=nodes, placement=t.placement,
            replicas=t.replicas or 1, port=t.port, args=tuple(t.args), ctx_size=t.ctx_size,
            persist=t.persist))
    return tuple(out)


def _check_after(declared: Declared, file: InventoryFile, source: Source) -> None:
    known = set(declared.after())
    for i, t in enumerate(file.services):
        for j, name in enumerate(t.after):
            if name not in known:
                what = ("[ray] is not declared" if name == RAY else
                        f"no [[models]] is named {name[len(MODEL_PREFIX):]!r}"
                        if name.startswith(MODEL_PREFIX) else
                        f"no service is named {name!r} (write model:NAME for a model)")
                raise source.fail(("services", i, "after", j),
                                  f"{source.key(('services', i, 'after'))}: {what}")
    try:
        declared.order()
    except CycleError as exc:
        first = next(i for i, s in enumerate(declared.services) if s.name == exc.chain[0])
        raise source.fail(("services", first, "after"), f"services wait for each other in a "
                          f"ring: {exc}") from None


def _check_ports(inventory: Inventory, declared: Declared, file: InventoryFile,
                 source: Source) -> None:
    """No two parts on one port of one node. A model placed by saf may land on any node."""
    taken: dict[tuple[str, int], str] = {}

    def take(nodes: tuple[str, ...], port: int, what: str, where: Where,
             placed: bool = False) -> None:
        for node in nodes:
            other = taken.setdefault((node, port), what)
            if other != what:
                verb = "could collide (saf may place it there)" if placed else "collides"
                raise source.fail(where, f"{source.key(where)}: port {port} on {node} "
                                  f"{verb} with {other}")
    if declared.ray is not None:
        take((declared.ray.head,), declared.ray.port, "ray.port", ("ray", "port"))
        take((declared.ray.head,), declared.ray.dashboard_port, "ray.dashboard_port",
             ("ray", "dashboard_port"))
    for i, model in enumerate(declared.models):
        nodes = model.nodes if model.on is not None else tuple(inventory.names)
        take(nodes, model.port, model.part, ("models", i, "port"), model.on is None)


def declared(inventory: Inventory) -> Declared:
    """The declaration of `inventory`, checked (module docstring); empty when saf.toml
    declares nothing."""
    file = inventory.file or InventoryFile()
    source = _source(inventory, file)
    result = Declared(up=_up(inventory, file, source), ray=_ray(inventory, file, source),
                      services=_services(inventory, file, source),
                      models=_models(inventory, file, source), path=inventory.path)
    _check_after(result, file, source)
    _check_ports(inventory, result, file, source)
    return result


class Reread:
    """`declared()` of an inventory, worked out once and again only when its file changes
    (its mtime or size): the Cluster screen asks every few seconds, and checking the whole
    declaration (the [up] recipes found and read among it) each time is wasted work. A file
    changed since is loaded again whole; a mistake in it is raised as `load_inventory` and
    `declared` raise it (file:line), and asked again the next time."""

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        self._stamp = _stamp(inventory.path)
        self._found: Declared | None = None

    def __call__(self) -> Declared:
        stamp = _stamp(self.inventory.path)
        if self._found is not None and stamp == self._stamp:
            return self._found
        if stamp != self._stamp:
            assert self.inventory.path is not None  # no path: no stamp, never changed
            self.inventory = load_inventory(self.inventory.path)
        self._found, self._stamp = declared(self.inventory), stamp
        return self._found


def _stamp(path: Path | None) -> tuple[int, int] | None:
    """What says a file changed: its mtime (ns) and size; None for no file (or none now)."""
    if path is None:
        return None
    try:
        found = path.stat()
    except OSError:
        return None
    return found.st_mtime_ns, found.st_size
