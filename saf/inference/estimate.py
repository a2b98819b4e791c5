"""What a model needs in memory to be served, from the model itself: its weights, the KV cache
at the context size it will be served with, and an allowance for the engine's compute buffers.

Read from a GGUF file's header (saf.inference.gguf_header), or from a safetensors model's
config.json and its files' headers (a folder, or an HF id already in the local Hugging Face
cache). Nothing is loaded; nothing is downloaded.

The figures follow llama.cpp's own accounting (checked against the sizes it logs for generated
models in tests/test_model_estimate.py):
- weights: the bytes of tensor data (llama.cpp's "model buffer size");
- KV cache: cells x layers x (n_head_kv x key dim + n_head_kv x value dim) x bytes per element
  (f16, 2 bytes, by default), cells being the context rounded up to 256 as llama.cpp does;
- compute: what llama.cpp's graph needs for one micro-batch of 512 tokens without flash
  attention (llama-cpp-python's default): the attention scores, 4 x 512 x cells x (n_head + 1)
  bytes, plus an upper bound on the rest, 4 x 512 x (n_vocab + 4 n_embd + 3 n_ff). With flash
  attention (llama-server's default on a GPU) the first term is far smaller, so this errs on
  the side of asking for more.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from saf.errors import SafError
from saf.inference.gguf_header import GgufHeader, read_gguf
from saf.inference.safetensors_header import tensor_bytes

DEFAULT_CTX = 4096      # llama-server's default context; smaller if the model's own is smaller
CTX_PAD = 256           # llama.cpp rounds its KV cache up to a multiple of this many cells
UBATCH = 512            # llama.cpp's default micro-batch (n_ubatch)
F32 = 4
KV_BYTES = 2            # f16 (llama.cpp's default cache type; vLLM's for bf16/f16 models)
HF_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
SPLIT = re.compile(r"^(.*)-(\d{5})-of-(\d{5})\.gguf$")  # llama.cpp's gguf-split names


@dataclass(frozen=True)
class ModelNeeds:
    """A model's shape and the bytes it needs at context `ctx` (all figures in bytes)."""

    model: str
    format: str           # "gguf" or "safetensors"
    layers: int
    n_embd: int
    n_head: int
    n_head_kv: int
    head_dim: int         # key (and, unless the model says otherwise, value) dimension
    value_dim: int
    n_vocab: int
    n_ff: int
    context_train: int    # the context the model was trained for (0: not given)
    ctx: int
    weights: int
    kv_cache: int
    compute: int

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.compute

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "total": self.total}


@dataclass(frozen=True)
class Shape:
    layers: int
    n_embd: int
    n_head: int
    n_head_kv: int
    head_dim: int
    value_dim: int
    n_vocab: int
    n_ff: int
    context_train: int


def needs(model: str, weights: int, shape: Shape, fmt: str, ctx: int | None = None,
          kv_bytes: int = KV_BYTES) -> ModelNeeds:
    """The figures for a model of `shape` with `weights` bytes of tensors, served at `ctx`
    (default: DEFAULT_CTX, or the model's own context if smaller)."""
    if ctx is None:
        ctx = min(DEFAULT_CTX, shape.context_train) if shape.context_train else DEFAULT_CTX
    if ctx < 1:
        raise SafError(f"{model}: a context size must be at least 1 (got {ctx})")
    cells = -(-ctx // CTX_PAD) * CTX_PAD
    kv = cells * shape.layers * shape.n_head_kv * (shape.head_dim + shape.value_dim) * kv_bytes
    compute = F32 * UBATCH * (cells * (shape.n_head + 1)
                              + shape.n_vocab + 4 * shape.n_embd + 3 * shape.n_ff)
    return ModelNeeds(model=model, format=fmt, ctx=ctx, weights=weights, kv_cache=kv,
                      compute=compute, **asdict(shape))


def _positive(value: int | None, what: str, model: str) -> int:
    if value is None or value <= 0:
        raise SafError(f"{model}: the model does not say its {what}")
    return value


def gguf_shape(header: GgufHeader) -> Shape:
    model = str(header.path)
    arch = header.metadata.get("general.architecture")
    if not isinstance(arch, str) or not arch:
        raise SafError(f"{model}: no general.architecture in the GGUF metadata")

    def key(name: str) -> int | None:
        return header.number(f"{arch}.{name}")

    layers = _positive(key("block_count"), f"layer count ({arch}.block_count)", model)
    n_embd = _positive(key("embedding_length"), f"width ({arch}.embedding_length)", model)
    n_head = _positive(key("attention.head_count"),
                       f"head count ({arch}.attention.head_count)", model)
    # A per-layer head_count_kv (an array) is rare; then every layer is taken at the most.
    n_head_kv = key("attention.head_count_kv") or n_head
    head_dim = key("attention.key_length") or n_embd // n_head
    value_dim = key("attention.value_length") or head_dim
    vocab = key("vocab_size") or header.array_lengths.get("tokenizer.ggml.tokens", 0)
    return Shape(layers=layers, n_embd=n_embd, n_head=n_head, n_head_kv=n_head_kv,
                 head_dim=head_dim, value_dim=value_dim, n_vocab=vocab,
                 n_ff=key("feed_forward_length") or 4 * n_embd,
                 context_train=key("context_length") or 0)


def config_shape(config: dict[str, Any], model: str) -> Shape:
    """The shape from a Hugging Face config.json (a multimodal model's text_config if the
    top level has no layers)."""
    if "num_hidden_layers" not in config and isinstance(config.get("text_config"), dict):
        config = config["text_config"]

    def key(name: str) -> int | None:
        value = config.get(name)
        return value if type(value) is int else None

    layers = _positive(key("num_hidden_layers"), "layer count (num_hidden_layers)", model)
    n_embd = _positive(key("hidden_size"), "width (hidden_size)", model)
    n_head = _positive(key("num_attention_heads"), "head count (num_attention_heads)", model)
    head_dim = key("head_dim") or n_embd // n_head
    return Shape(layers=layers, n_embd=n_embd, n_head=n_head,
                 n_head_kv=key("num_key_value_heads") or n_head, head_dim=head_dim,
                 value_dim=head_dim, n_vocab=key("vocab_size") or 0,
                 n_ff=key("intermediate_size") or 4 * n_embd,
                 context_train=key("max_position_embeddings") or 0)


def hf_cache_folder(model_id: str, environ: dict[str, str] | None = None) -> Path | None:
    """The local snapshot of `model_id` in the Hugging Face cache (HF_HUB_CACHE, else
    HF_HOME/hub, else ~/.cache/huggingface/hub): the one refs/main names, else the only one."""
    env = os.environ if environ is None else environ
    hub = (Path(env["HF_HUB_CACHE"]) if env.get("HF_HUB_CACHE")
           else Path(env["HF_HOME"]) / "hub" if env.get("HF_HOME")
           else Path.home() / ".cache" / "huggingface" / "hub")
    repo = hub / ("models--" + model_id.replace("/", "--"))
    snapshots = repo / "snapshots"
    try:
        main = (repo / "refs" / "main").read_text().strip()
    except OSError:
        main = ""
    if main and re.fullmatch(r"[0-9a-f]{40}", main) and (snapshots / main).is_dir():
        return snapshots / main
    found = sorted(p for p in snapshots.glob("*") if p.is_dir()) if snapshots.is_dir() else []
    return found[0] if len(found) == 1 else None


def _folder(folder: Path, label: str, ctx: int | None, kv_bytes: int) -> ModelNeeds:
    try:
        config = json.loads((folder / "config.json").read_text())
    except OSError as exc:
        raise SafError(f"{label}: no config.json ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SafError(f"{label}: config.json is not JSON ({exc})") from None
    if not isinstance(config, dict):
        raise SafError(f"{label}: config.json is not a JSON object")
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise SafError(f"{label}: no .safetensors files beside config.json")
    return needs(label, sum(tensor_bytes(f) for f in files), config_shape(config, label),
                 "safetensors", ctx, kv_bytes)


def gguf_weights(header: GgufHeader) -> int:
    """The tensor bytes of a GGUF model, all its splits counted: a model cut by llama.cpp's
    gguf-split (NAME-00001-of-00003.gguf, `split.count` in each) has its tensors in every
    file, and llama.cpp loads them all when given the first."""
    count = header.number("split.count") or 1
    if count <= 1:
        return header.data_bytes
    found = SPLIT.match(header.path.name)
    if not found or int(found[3]) != count:
        raise SafError(f"{header.path}: one of {count} splits, but not named "
                       f"NAME-00001-of-{count:05d}.gguf: the others cannot be found")
    total = 0
    for i in range(1, count + 1):
        part = header.path.with_name(f"{found[1]}-{i:05d}-of-{count:05d}.gguf")
        if not part.is_file():
            raise SafError(f"{header.path}: split {i} of {count} ({part.name}) is missing")
        total += read_gguf(part).data_bytes
    return total


def estimate(model: str, ctx: int | None = None, kv_bytes: int = KV_BYTES) -> ModelNeeds:
    """What `model` (a GGUF file, a safetensors folder, or an HF id in the local cache)
    needs to be served at context `ctx`, its KV cache `kv_bytes` an element (2: f16)."""
    path = Path(model).expanduser()
    if path.is_file():
        header = read_gguf(path)
        return needs(model, gguf_weights(header), gguf_shape(header), "gguf", ctx, kv_bytes)
    if path.is_dir():
        return _folder(path, model, ctx, kv_bytes)
    if HF_ID.match(model):
        cached = hf_cache_folder(model)
        if cached is None:
            raise SafError(f"{model}: not a file or folder here, and not in the local Hugging "
                           "Face cache (download it first, e.g. `hf download "
                           f"{model}`)")
        return _folder(cached, model, ctx, kv_bytes)
    raise SafError(f"{model}: no such file or folder")
