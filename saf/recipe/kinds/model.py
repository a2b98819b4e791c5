"""kind = "model": start a model server on the node, detached (or, with `persist = true`, kept
by the node's init system: saf.recipe.kinds.model_kept), and wait until it is ready.
(Its old name, "serve", still loads with a notice: saf.renamed.)

Facts first: which engine (`auto` asks the node what it has, unless the node's inventory vars
say `serve_engine`), and which servers saf already runs there (their records, probed). The
same server already running on the port is `skipped`; otherwise `apply` starts it (see
saf.inference.node.start_server) and waits for readiness, failing with the log's last lines.
"""

from __future__ import annotations

from dataclasses import dataclass

from saf.inference.engines import CHOICES, GPU_ENV, NO_ENGINE_HINT, ModelServerSpec, split_args
from saf.inference.node import Target, detect_engine, list_servers, start_server
from saf.inference.records import UpMark
from saf.numbers import number_problem, parse_port
from saf.recipe.events import StepStatus
from saf.recipe.kinds.base import Fail, Kind, KindParams, Outcome, Plan, StepContext, Value, written
from saf.recipe.kinds.model_kept import KeptModel, apply_kept, plan_kept
from saf.shell import join

TRUE = ("true", "yes", "1", "on")
FALSE = ("false", "no", "0", "off", "")


class ModelStepError(Exception):
    """A value of the step is wrong for this node (e.g. a port that is not a number)."""


class ModelServerParams(KindParams, kw_only=True):  # kw_only: engine first
    # Each may be a {var}; its form is checked on each node (_spec), once put in.
    engine: Value = "auto"  # which server: CHOICES
    model: Value  # a model id or folder (vLLM, MLX), a GGUF file (llama.cpp)
    port: Value  # the port it listens on
    host: Value | None = None  # the address it listens on (default 127.0.0.1)
    tensor_parallel: Value | None = None  # vLLM's --tensor-parallel-size (default 1)
    ray: Value | None = None  # vLLM across the nodes of a Ray cluster (default false)
    bin: Value | None = None  # a folder holding the engine's program (default: PATH)
    args: Value | None = None  # more arguments for the server, as one string
    ready_timeout: Value | None = None  # seconds to wait until it answers (default 600)
    # true: kept by the node's init system as service model-SERVER (unit saf-model-SERVER,
    # restart always), or saf's supervisor where there is none (not kept across reboots).
    persist: Value | None = None
    server: Value | None = None  # the SERVER of that name (default: the port)
    env: dict[str, str] | None = None  # the server's variables (plain values: shown)
    # A file on the node with the secrets (KEY="value" lines, 0600, as env_file_text writes
    # them), read by sh before the server starts: its values never reach a command line.
    env_file: Value | None = None
    # With persist: saf up's mark on the service (the cluster whose declaration keeps it,
    # saf.cluster.marked); a recipe's own model step leaves it out.
    up: Value | None = None


@dataclass(frozen=True)
class ModelStart:
    """What `plan` found, for `apply`, for a server saf starts detached (persist = false;
    a kept one's is model_kept's KeptModel)."""

    spec: ModelServerSpec
    timeout: float  # seconds until it must answer
    target: Target
    up: UpMark | None = None  # saf up's mark, kept in the record (saf.up.orphans)


class ModelServer(Kind[ModelStart | KeptModel]):
    name = "model"
    supports_become = False  # a server runs as the login user, with its log in their home
    forms = {"engine": "word", "model": "line", "port": "port", "host": "host",
             "tensor_parallel": "count", "ray": "bool", "bin": "path", "args": "args",
             "ready_timeout": "number", "persist": "bool", "server": "word", "env": "line",
             "env_file": "path", "up": "line"}
    Params = ModelServerParams

    def __init__(self, values: dict[str, str], env: dict[str, str] | None = None) -> None:
        self.values = values
        self.env = dict(env or {})

    @classmethod
    def parse(cls, params: ModelServerParams, fail: Fail) -> ModelServer:
        # Only the keys written (and engine): _spec reads a missing one as its default.
        for key in params.env or {}:
            if not key.isidentifier() or not key.isascii():
                raise fail("env", f"env: {key!r} is not a variable name")
        values = {key: written(value) for key in params.__struct_fields__
                  if key != "env" and (value := getattr(params, key)) is not None}
        return cls(values, params.env)

    def templates(self) -> list[tuple[str, str]]:
        return list(self.values.items()) + [("env", value) for value in self.env.values()]

    def describe(self) -> str:
        return (f"serve {self.values['model']} with {self.values['engine']} on port "
                f"{self.values['port']}")

    def _spec(self, ctx: StepContext, engine: str, env: tuple[tuple[str, str], ...] = (),
              home: str = "") -> tuple[ModelServerSpec, float]:
        got = {key: ctx.render(value, shell=False).strip() for key, value in self.values.items()}
        env = (*env, *((key, ctx.render(value, shell=False)) for key, value in self.env.items()))
        env_file = got.get("env_file", "")
        if env_file.startswith("~/") and home:  # sh's `.` takes no `~`: the login user's home
            env_file = home.rstrip("/") + env_file[1:]
        model = got["model"] or str(ctx.node.vars.get("serve_model", ""))
        if not model:
            raise ModelStepError("no model: pass --var model=... or set serve_model in the "
                                 "node's vars")

        def number(key: str, default: str, low: float, high: float, integer: bool) -> float:
            raw = got.get(key, default) or default
            try:
                value = float(raw)
            except ValueError:
                raise ModelStepError(f"{key} {raw!r} is not a number") from None
            problem = number_problem(int(value) if integer and value.is_integer() else value,
                                     low=low, high=high, integer=integer)
            if problem:
                raise ModelStepError(f"{key} {raw!r} {problem}")
            return value

        try:  # a port is digits, 1 to 65535: not "8000.0000001", "inf" or "8000;id"
            port = parse_port(got.get("port", ""))
        except ValueError as exc:
            raise ModelStepError(f"port {exc}") from None
        try:
            args = split_args(got.get("args", ""))
        except ValueError as exc:  # unbalanced quoting: the step fails, with no traceback
            raise ModelStepError(f"args {got.get('args', '')!r}: {exc}") from None
        ray = got.get("ray", "false").lower()
        if ray not in TRUE + FALSE:
            raise ModelStepError(f"ray {got['ray']!r} is not true or false")
        spec = ModelServerSpec(engine=engine, model=model,
                               port=port,
                               host=got.get("host") or "127.0.0.1",
                               tensor_parallel=int(number("tensor_parallel", "1", 1, 1024, True)),
                               ray=ray in TRUE, bin_dir=got.get("bin", ""),
                               python=ctx.node.python, args=args, env=env,
                               env_file=env_file)
        return spec, number("ready_timeout", "600", 1, 7 * 86400, False)

    async def plan(self, ctx: StepContext) -> Plan[ModelStart | KeptModel]:
        target = Target(ctx.node.name, ctx.node.python,
                        lambda command, timeout: ctx.run(command, quiet=True))
        engine = ctx.render(self.values["engine"], shell=False).strip() or "auto"
        if engine == "auto":
            engine = str(ctx.node.vars.get("serve_engine", "auto"))
        if engine not in CHOICES:
            return Plan(True, refusal=f"unknown engine {engine!r} (one of {', '.join(CHOICES)})")
        home = ""
        if self.values.get("env_file", "").startswith("~"):
            home = (await ctx.run('printf %s "$HOME"', quiet=True)).stdout.strip()
        try:
            spec, timeout = self._spec(ctx, engine if engine != "auto" else "llama-server",
                                       home=home)
        except ModelStepError as exc:  # a value the step needs is wrong: in --check too
            return Plan(True, refusal=str(exc))
        if engine == "auto":
            found, gpu = await detect_engine(target, spec.bin_dir, spec.python)
            if found is None:
                why = ("no engine on this node: none of mlx_lm.server, vllm (with nvidia-smi, "
                       "or an XPU build with an Intel Arc GPU), llama-server, or llama_cpp in "
                       "its Python" + NO_ENGINE_HINT.get(gpu, ""))
                return Plan(True, refusal=why)
            spec, timeout = self._spec(ctx, found, GPU_ENV.get(gpu, ()), home)
        running = await list_servers(target)
        here = [e for e in running.endpoints if e.port == spec.port and e.up]
        persist = ctx.render(self.values.get("persist", "false"), shell=False).strip().lower()
        if persist not in TRUE + FALSE:
            return Plan(True, refusal=f"persist {persist!r} is not true or false")
        if persist in TRUE:
            up = self.values.get("up")
            return await plan_kept(ctx, spec, timeout, target, here,
                                   self.values.get("server"),
                                   ctx.render(up, shell=False) if up is not None else None)
        if here and here[0].engine == spec.engine and here[0].model == spec.model \
                and list(here[0].argv) == spec.argv():
            return Plan(False, f"already serving {spec.model} with {spec.engine} "
                        f"(pid {here[0].pid}, {here[0].state})")
        reason = (f"port {spec.port} serves {here[0].model} ({here[0].engine}); it would "
                  "fail until that is stopped" if here else
                  f"would start {spec.engine}: {' '.join(spec.argv())}")
        # What it would run, written as a shell would read it (each argument quoted).
        up, server = self.values.get("up"), self.values.get("server")
        mark = UpMark(cluster=ctx.render(up, shell=False).strip(),
                      model=ctx.render(server, shell=False).strip()) \
            if up is not None and server is not None else None
        return Plan(True, reason, [join(spec.argv())], ModelStart(spec, timeout, target, mark))

    async def apply(self, ctx: StepContext, plan: Plan[ModelStart | KeptModel]) -> Outcome:
        data = plan.given()
        if isinstance(data, KeptModel):
            return await apply_kept(ctx, data)
        spec, timeout, target = data.spec, data.timeout, data.target
        started = await start_server(target, spec, timeout=timeout, up=data.up)
        if started.status == "skipped":
            return Outcome(StepStatus.SKIPPED, f"already serving {spec.model}")
        if started.status == "failed":
            return Outcome(StepStatus.FAILED, started.why, tail=started.tail)
        seconds = f" in {started.seconds:.1f} s" if started.seconds is not None else ""
        pid = started.endpoint.pid if started.endpoint else "?"
        return Outcome(StepStatus.CHANGED, f"{spec.engine} ready{seconds} on port {spec.port} "
                       f"(pid {pid}, log ~/.saf/serve/{spec.port}.log)")
