"""The declared cluster as the recipe that brings it up, or takes it down (saf.up.Declared ->
saf.recipe.model.Recipe, in memory), for the recipe runner.

Up, in order: [up]'s recipes (`recipe` steps), Ray (one `ray_start` step on every node), then
each service and model in `Declared.order()`: a service as a `service` step on its nodes
(its secrets first sent by an `upload` step into a 0600 file on the node), a model as a
`model` step on its nodes (`on`, or those saf.up.place chose; a placed model's replica left
on a node it is no longer placed on is stopped first, by the step `saf down` uses). Down is
the reverse: models stopped, services `state = "absent"` (and their secrets file removed),
then `ray_stop`. [up]'s recipes are not undone.

Every value of the declaration is put into the steps literally: a `{` the runner would read
as a placeholder is doubled.

The run's variables carry what a resume needs to build the same recipe again (saf.up.bring.resume):
the inventory's path and each placed model's nodes.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import re
import shlex
from collections.abc import Mapping
from pathlib import Path

from saf import paths, secrets
from saf.cluster.units import ServiceSpec
from saf.inventory.model import Inventory
from saf.ray import command as rc
from saf.recipe.kinds.model import ModelServer
from saf.recipe.kinds.service import Service as ServiceKind
from saf.recipe.kinds.service import ServiceParams
from saf.recipe.kinds.shell import Shell
from saf.recipe.kinds.upload import Upload
from saf.recipe.model import Recipe, Step, Var
from saf.up import orphans as uo
from saf.up.declared import RAY, Declared, Model, Ray, Service
from saf.up.model_stop import ModelStop

UP = "saf up"
DOWN = "saf down"
INVENTORY_VAR = "inventory"
PLACED_PREFIX = "placed_"
ENV_FOLDER = "~/.saf/env"  # on the node: each service's secrets, NAME.env, 0600
SECRETS_DIGEST = "SAF_SECRETS_DIGEST"  # in a unit's env: its secrets' fingerprint
RAY_TIMEOUT = 600.0
RAY_RESOURCES = "ray_resources"  # the node var ray_start reads (saf.ray.command)
RAY_PYTHON = "ray_python"  # the node var ray_start runs Ray's Python from (saf.ray.command)

# How each engine is told the context size; `auto` (the engine is known only on the node) and
# MLX (no such flag) are started with their own default.
CTX_FLAGS = {"llama-server": "--ctx-size", "llama-cpp-python": "--n_ctx",
             "vllm": "--max-model-len"}

Placed = Mapping[str, tuple[str, ...]]  # model name -> the nodes saf placed it on


def literal(text: str) -> str:
    """`text` as the runner puts it in unchanged: a placeholder-looking `{name}` doubled."""
    return re.sub(r"(?<!\$)\{([A-Za-z_][A-Za-z0-9_.-]*)\}", r"{{\1}}", text)


def model_nodes(model: Model, placed: Placed) -> tuple[str, ...]:
    return model.nodes if model.on is not None else tuple(placed.get(model.name, ()))


def placed_vars(placed: Placed) -> dict[str, str]:
    return {PLACED_PREFIX + name: ",".join(nodes) for name, nodes in placed.items()}


def placed_of(values: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    return {k[len(PLACED_PREFIX):]: tuple(v.split(",")) if v else ()
            for k, v in values.items() if k.startswith(PLACED_PREFIX)}


def for_ray(inventory: Inventory, declared: Declared) -> Inventory:
    """`inventory` as the Ray step must see it: [ray]'s head the one node with role head,
    [ray]'s resources and python where `ray_start` reads them (each node's
    `vars.ray_resources`, declared ones over the node's own; `vars.ray_python`). The one
    place [ray] reaches the Ray step's nodes."""
    ray = declared.ray
    if ray is None:
        return inventory
    nodes = []
    for node in inventory.nodes:
        roles = tuple(r for r in node.roles if r != "head")
        if node.name == ray.head:
            roles = ("head", *roles)
        amounts = ray.resources_of(inventory, node)
        variables = node.vars
        if amounts:
            own = node.vars.get(RAY_RESOURCES)
            variables = {**node.vars, RAY_RESOURCES: {**(own if isinstance(own, dict) else {}),
                                                      **amounts}}
        if ray.python:
            variables = {**variables, RAY_PYTHON: ray.python}
        nodes.append(dataclasses.replace(node, roles=roles, vars=variables))
    return dataclasses.replace(inventory, nodes=tuple(nodes))


def ray_start_step(ray: Ray, index: int, head_lost: bool = False,
                   cluster: str | None = None) -> Step:
    """The one place the Ray step is built from [ray] (head: the inventory's; `persist`:
    Ray kept by each node's init system as service `ray`, docs/ray.md, marked as `cluster`'s
    (saf.cluster.marked) as declared services are). `head_lost`: the head's node does not
    answer, so the step is on the head alone and every worker's is skipped (a worker cannot
    join a head that is not there)."""
    from saf.recipe.kinds.ray_start import RayStart  # Ray's code, only for a [ray] cluster

    kind = RayStart(port=str(ray.port), dashboard_host="", dashboard_port=str(ray.dashboard_port),
                    temp_dir=ray.temp_dir or rc.DEFAULT_TEMP_DIR, restart="false",
                    join_timeout=90.0, persist="true" if ray.persist else "false",
                    up=literal(cluster) if cluster is not None and ray.persist else None)
    return Step(index=index, name="ray", kind=kind, on=ray.head if head_lost else "all",
                timeout=RAY_TIMEOUT, line=ray.line)


def env_path(service: str) -> str:
    return f"{ENV_FOLDER}/{service}.env"


def model_env_path(model: str) -> str:
    """A model's secrets on the node (a folder of their own: a service may be named
    `model-NAME`)."""
    return f"{ENV_FOLDER}/models/{model}.env"


def local_env_file(service: str) -> Path:
    return paths.state_dir() / "up" / "env" / f"{service}.env"


def _has_secrets(part: Service | Model) -> bool:
    return part.env_file is not None or any(secrets.reference(v) for v in part.env.values())


# The secrets files this process staged for upload. They live only as long as it does (a
# resume compiles saf.toml again): a copy left in the state folder would outlive the run, the
# service's `saf down`, even its removal from saf.toml; the node's 0600 file is the one kept.
_staged: set[Path] = set()


@atexit.register
def _remove_staged() -> None:
    for path in sorted(_staged):
        with contextlib.suppress(OSError):
            path.unlink()
    _staged.clear()


def _secret_file(name: str, env: secrets.Environment) -> Path:
    """A part's secrets written into a private local file (0600), to be uploaded; `name`:
    a service's, or models/NAME. Removed when this process exits."""
    path = local_env_file(name)
    paths.private_dir(path.parent)
    text = secrets.env_file_text(secrets.Environment(
        {k: v for k, v in env.values.items() if k in env.secret}, env.secret))
    _staged.add(path)
    with paths.open_private(path) as f:
        f.write(text)
    return path


def service_steps(service: Service, index: int, environ: Mapping[str, str] | None,
                  cluster: str | None = None) -> list[Step]:
    """The service's steps; `cluster`: the mark its unit carries (saf.cluster.marked), so
    that a later `saf up --prune` knows it for saf up's own once it leaves saf.toml."""
    env = service.environment(environ)
    on = ",".join(service.nodes) or service.on
    steps = []
    env_file = None
    if env.secret:
        steps.append(Step(index=index, name=f"{service.name} env", on=on, line=service.line,
                          kind=Upload(str(_secret_file(service.name, env)),
                                      env_path(service.name), 0o600)))
        env_file = env_path(service.name)
    pin = service.pinning
    params = ServiceParams(
        service=service.name, command=literal(service.command),
        workdir=literal(service.workdir) if service.workdir else None,
        env={k: literal(v) for k, v in plain_env(env).items()} or None,
        env_file=env_file, restart=service.restart,
        user=literal(service.user) if service.user else None,
        cpus=pin.cpus, numa=pin.numa,
        gpus=",".join(map(str, pin.gpus)) if pin.gpus is not None else None,
        health=_health(service), up=literal(cluster) if cluster is not None else None)
    steps.append(Step(index=index + len(steps), name=service.name, on=on, line=service.line,
                      kind=ServiceKind(params)))
    return steps


def plain_env(env: secrets.Environment) -> dict[str, str]:
    """A service's environment as its unit holds it: the values that are not secret, and the
    secrets' digest (SECRETS_DIGEST), so a changed secret changes the unit."""
    plain = {k: v for k, v in env.values.items() if k not in env.secret}
    return {**plain, SECRETS_DIGEST: env.digest()} if env.secret else plain


def service_spec(service: Service, environ: Mapping[str, str] | None = None,
                 cluster: str | None = None) -> ServiceSpec:
    """The service as its `service` step writes it, before the node resolves its program
    and home (saf.cluster.service.resolve): what `saf status` compares the node's with."""
    env = service.environment(environ)
    pin = service.pinning
    return ServiceSpec(
        name=service.name, argv=tuple(shlex.split(service.command)), workdir=service.workdir,
        env=plain_env(env), env_file=env_path(service.name) if env.secret else None,
        restart=service.restart, user=service.user, cpus=pin.cpus, numa=pin.numa,
        gpus=",".join(map(str, pin.gpus)) if pin.gpus is not None else None, up=cluster)


def _health(service: Service) -> str | None:
    """The service's check as the `service` step's health command: a URL is asked from the
    node by its own Python (curl may be missing), and must answer 2xx."""
    if service.check_url:
        return ("{node.python} -c 'import sys, urllib.request; "
                "urllib.request.urlopen(sys.argv[1], timeout=5)' " + shlex.quote(
                    literal(service.check_url)))
    return literal(service.check_command) if service.check_command else None


def model_steps(model: Model, index: int, placed: Placed,
                environ: Mapping[str, str] | None = None, cluster: str | None = None
                ) -> list[Step]:
    """The model's server on its nodes: its secrets first sent by an `upload` step into a
    0600 file there (read by sh before the server starts), its plain env as the step's."""
    nodes = model_nodes(model, placed)
    if not nodes:
        return []
    on = ",".join(nodes)
    env = model.environment(environ)
    steps = []
    # Kept by the node's init system (or saf's supervisor) as service model-NAME, unless
    # the declaration says persist = false: a declared model stays served.
    values = {"engine": model.engine, "model": literal(model.model), "port": str(model.port),
              "persist": "true" if model.persist else "false", "server": model.name}
    if cluster is not None:  # saf up's mark on its service model-NAME (saf.cluster.marked)
        values["up"] = literal(cluster)
    if env.secret:
        steps.append(Step(index=index, name=f"model {model.name} env", on=on, line=model.line,
                          kind=Upload(str(_secret_file(f"models/{model.name}", env)),
                                      model_env_path(model.name), 0o600)))
        values["env_file"] = model_env_path(model.name)
    args = list(model.args)
    flag = CTX_FLAGS.get(model.engine)
    if model.ctx_size is not None and flag is not None:
        args = [flag, str(model.ctx_size), *args]
    if args:
        values["args"] = literal(" ".join(_quoted(a) for a in args))
    plain = {k: literal(v) for k, v in env.values.items() if k not in env.secret}
    steps.append(Step(index=index + len(steps), name=f"model {model.name}", on=on,
                      kind=ModelServer(values, plain), line=model.line))
    return steps


def _quoted(arg: str) -> str:
    return shlex.quote(arg)


def _vars(inventory: Inventory, placed: Placed, orphans: uo.Orphans) -> dict[str, Var]:
    values = {INVENTORY_VAR: str(inventory.path or ""), **placed_vars(placed),
              **uo.as_vars(orphans)}
    return {k: Var(k, v) for k, v in values.items()}


def up_recipe(declared: Declared, inventory: Inventory, placed: Placed,
              environ: Mapping[str, str] | None = None, surplus: Placed | None = None,
              orphans: uo.Orphans | None = None, head_lost: bool = False) -> Recipe:
    """The recipe `saf up` runs; `surplus`: a placed model's replicas saf started on nodes
    it is no longer placed on (saf.up.place.Placement.surplus), stopped before the model's
    step, as `saf down` stops them; `orphans` (`saf up --prune`): the services saf up
    installed that saf.toml no longer declares, removed last (saf.up.orphans); `head_lost`:
    Ray's head does not answer, so no worker's Ray is started (ray_start_step)."""
    steps: list[Step] = list(declared.up_recipe().steps)
    for name in declared.order():
        part = declared.part(name)
        if isinstance(part, Ray):
            steps.append(ray_start_step(part, len(steps), head_lost, inventory.cluster.name))
        elif isinstance(part, Service):
            steps.extend(service_steps(part, len(steps), environ, inventory.cluster.name))
        else:
            extra = (surplus or {}).get(part.name, ())
            if extra:
                steps.append(Step(index=len(steps), name=f"model {part.name} surplus",
                                  line=part.line, on=",".join(extra),
                                  kind=ModelStop(part.name, part.port, part.model)))
            steps.extend(model_steps(part, len(steps), placed, environ,
                                     inventory.cluster.name))
    steps.extend(uo.steps(orphans or {}, len(steps), inventory.cluster.name))
    return Recipe(name=UP, description="bring the cluster to what saf.toml declares",
                  vars=_vars(inventory, placed, orphans or {}), steps=tuple(steps),
                  path=inventory.path,
                  folder=inventory.path.parent if inventory.path else None)


def down_recipe(declared: Declared, inventory: Inventory, placed: Placed,
                orphans: uo.Orphans | None = None, head_lost: bool = False) -> Recipe:
    """The recipe `saf down` runs: the services saf up left that saf.toml no longer
    declares (`orphans`), then the parts in the reverse of their bring-up order."""
    steps: list[Step] = uo.steps(orphans or {}, 0, inventory.cluster.name)
    for name in reversed(declared.order()):
        part = declared.part(name)
        index = len(steps)
        if name == RAY and isinstance(part, Ray):
            from saf.recipe.kinds.ray_stop import RayStop  # Ray's code, only for [ray]

            steps.append(Step(index=index, name="ray", on="all", timeout=RAY_TIMEOUT,
                              kind=RayStop(part.temp_dir or rc.DEFAULT_TEMP_DIR)))
        elif isinstance(part, Service):
            on = ",".join(part.nodes) or part.on
            steps.append(Step(index=index, name=part.name, line=part.line, on=on,
                              kind=ServiceKind(ServiceParams(service=part.name,
                                                             state="absent"))))
            if _has_secrets(part):
                # Its secrets leave the node with it.
                where = '"$HOME"/' + shlex.quote(env_path(part.name).removeprefix("~/"))
                steps.append(Step(index=index + 1, name=f"{part.name} env", on=on,
                                  line=part.line, check=f"test ! -e {where}",
                                  kind=Shell(f"rm -f {where}")))
        elif isinstance(part, Model):
            # Every node it may be on (where it was placed may have changed since): each
            # node's records say whether it runs there.
            on = ",".join(model_nodes(part, placed)) if part.on is not None else "all"
            steps.append(Step(index=index, name=f"model {part.name}", line=part.line, on=on,
                              kind=ModelStop(part.name, part.port, part.model)))
            if _has_secrets(part):  # its secrets leave the nodes with it
                where = '"$HOME"/' + shlex.quote(model_env_path(part.name).removeprefix("~/"))
                steps.append(Step(index=index + 1, name=f"model {part.name} env", on=on,
                                  line=part.line, check=f"test ! -e {where}",
                                  kind=Shell(f"rm -f {where}")))
    return Recipe(name=DOWN, description="take down what saf.toml declares",
                  vars=_vars(inventory, placed, orphans or {}), steps=tuple(steps),
                  path=inventory.path,
                  folder=inventory.path.parent if inventory.path else None)
