"""What a model needs (saf.inference.estimate), checked against llama.cpp's own figures for
real GGUF files written at several sizes, and the readers' refusal of hostile files."""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from saf.errors import SafError
from saf.inference.estimate import estimate
from saf.inference.gguf_header import read_gguf
from tests.helpers.tiny_gguf import write_tiny_llama

MIB = 1 << 20
# (name, writer's sizes, context served at): deeper, wider, grouped-query heads, and a context
# llama.cpp rounds up (1000 -> 1024 cells).
SIZES = [
    ("tiny", {}, 1000),
    ("deep", {"layers": 8}, 512),
    ("gqa", {"embed": 256, "heads": 8, "heads_kv": 2, "ffn": 512}, 2048),
    ("wide", {"layers": 3, "embed": 384, "heads": 6, "ffn": 1024}, 768),
]

# Loads each model with llama.cpp (as `python -m llama_cpp.server` would) in a child process,
# so its log (C stderr) can be read; a marker line separates the models.
LOAD = textwrap.dedent("""
    import sys, llama_cpp
    for path, ctx in zip(sys.argv[1::2], sys.argv[2::2]):
        print("=== " + path, file=sys.stderr, flush=True)
        model = llama_cpp.Llama(model_path=path, n_ctx=int(ctx), verbose=True)
        del model
""")


def llama_cpp_figures(log: str) -> dict[str, float]:
    """MiB of the model buffers, the KV cache and the compute buffer, as llama.cpp logs them."""
    model = sum(float(m) for m in re.findall(r"model buffer size =\s+([\d.]+) MiB", log))
    kv = re.search(r"llama_kv_cache: size =\s+([\d.]+) MiB", log)
    compute = re.search(r"compute buffer size =\s+([\d.]+) MiB", log)
    assert model, log[-3000:]
    assert kv, log[-3000:]
    assert compute, log[-3000:]
    return {"weights": model, "kv_cache": float(kv[1]), "compute": float(compute[1])}


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gguf-sizes")
    paths = {name: write_tiny_llama(folder / f"{name}.gguf", **sizes)
             for name, sizes, _ in SIZES}
    argv = [a for name, _, ctx in SIZES for a in (str(paths[name]), str(ctx))]
    done = subprocess.run([sys.executable, "-c", LOAD, *argv], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    parts = done.stderr.split("=== ")[1:]
    return {name: (paths[name], ctx, llama_cpp_figures(part))
            for (name, _, ctx), part in zip(SIZES, parts, strict=True)}


@pytest.mark.parametrize("name", [s[0] for s in SIZES])
def test_the_estimate_holds_what_llama_cpp_allocates(measured, name):
    """Weights and KV cache as llama.cpp reports them (to its 0.01 MiB of rounding, weights
    within 1 %); the compute allowance never below llama.cpp's compute buffer; the total never
    below llama.cpp's and at most 25 % above it."""
    path, ctx, real = measured[name]
    est = estimate(str(path), ctx=ctx)
    assert est.weights / MIB == pytest.approx(real["weights"], rel=0.01, abs=0.01)
    assert est.kv_cache / MIB == pytest.approx(real["kv_cache"], abs=0.01)
    assert est.compute / MIB >= real["compute"] - 0.01
    real_total = sum(real.values())
    assert real_total - 0.01 <= est.total / MIB <= 1.25 * real_total


def test_gguf_shape_is_read_from_the_header(tmp_path):
    path = write_tiny_llama(tmp_path / "m.gguf", layers=3, embed=128, heads=8, heads_kv=2,
                            ffn=256, context=8192)
    est = estimate(str(path))
    assert (est.layers, est.n_embd, est.n_head, est.n_head_kv, est.head_dim, est.n_ff,
            est.n_vocab, est.context_train) == (3, 128, 8, 2, 16, 256, 354, 8192)
    assert est.ctx == 4096  # the default, smaller than the model's own 8192
    # 4096 cells x 3 layers x 2 KV heads x (16 + 16) x 2 bytes
    assert est.kv_cache == 4096 * 3 * 2 * 32 * 2
    assert est.weights == path.stat().st_size - read_gguf(path).data_start


# -- hostile and broken files ---------------------------------------------------------------

def _header(*, version=3, tensors=0, kvs=b"", kv_count=0) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, tensors, kv_count) + kvs


def _string(s: bytes) -> bytes:
    return struct.pack("<Q", len(s)) + s


@pytest.mark.parametrize(("content", "why"), [
    (b"PK\x03\x04" + bytes(64), "no GGUF magic"),
    (_header(version=1) + bytes(16), "GGUF version 1"),
    (_header(kv_count=1 << 60) + bytes(16), "metadata entries"),
    (_header(tensors=1 << 40) + bytes(16), "tensors in"),
    # a key that claims 2**62 bytes
    (_header(kv_count=1, kvs=struct.pack("<Q", 1 << 62)) + bytes(16), "a string of"),
    # an array of 2**50 u32 values
    (_header(kv_count=1, kvs=_string(b"k") + struct.pack("<IIQ", 9, 4, 1 << 50)) + bytes(8),
     "longer than the file"),
    # an array of 2**40 strings
    (_header(kv_count=1, kvs=_string(b"k") + struct.pack("<IIQ", 9, 8, 1 << 40)) + bytes(8),
     "longer than the file"),
    # a token array whose second string claims 2**40 bytes
    (_header(kv_count=1, kvs=_string(b"k") + struct.pack("<IIQ", 9, 8, 2) + _string(b"a")
             + struct.pack("<Q", 1 << 40)) + bytes(32), "a string of 1099511627776 bytes"),
    # a token array whose strings run past the end of the file
    (_header(kv_count=1, kvs=_string(b"k") + struct.pack("<IIQ", 9, 8, 3) + _string(b"a")
             + struct.pack("<Q", 30)) + bytes(24), "the file ends first"),
    # an unknown value type
    (_header(kv_count=1, kvs=_string(b"k") + struct.pack("<I", 77)) + bytes(8), "value type 77"),
    # arrays nested deeper than two
    (_header(kv_count=1, kvs=_string(b"k") + struct.pack("<IIQ", 9, 9, 1)
             + struct.pack("<IQ", 9, 1) + struct.pack("<IQ", 9, 1)) + bytes(8), "value type 9"),
])
def test_hostile_gguf_is_refused_with_a_reason(tmp_path, content, why):
    path = tmp_path / "bad.gguf"
    path.write_bytes(content)
    with pytest.raises(SafError, match=why) as caught:
        estimate(str(path))
    assert str(path) in str(caught.value)


def test_a_tensor_beyond_the_file_is_refused(tmp_path):
    tensor = _string(b"t") + struct.pack("<I", 1) + struct.pack("<Q", 4) + struct.pack(
        "<IQ", 0, 1 << 40)
    path = tmp_path / "t.gguf"
    path.write_bytes(_header(tensors=1) + tensor + bytes(64))
    with pytest.raises(SafError, match="beyond the end of the file"):
        read_gguf(path)


def test_a_truncated_real_model_is_refused(tmp_path):
    whole = write_tiny_llama(tmp_path / "m.gguf").read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(whole[:5000])  # inside the token list
    with pytest.raises(SafError, match="the file ends first"):
        estimate(str(cut))


# -- safetensors folders and the Hugging Face cache -------------------------------------------

CONFIG = {"num_hidden_layers": 4, "hidden_size": 256, "num_attention_heads": 8,
          "num_key_value_heads": 2, "intermediate_size": 512, "vocab_size": 1000,
          "max_position_embeddings": 32768}


def _safetensors(path: Path, tensors: dict[str, int]) -> None:
    """A .safetensors file in the library's layout: u64 header length, JSON, data."""
    header, offset = {}, 0
    for name, n in tensors.items():
        header[name] = {"dtype": "BF16", "shape": [n // 2], "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(offset))


def test_a_safetensors_folder(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(CONFIG))
    _safetensors(tmp_path / "model-00001-of-00002.safetensors", {"a": 4000, "b": 6000})
    _safetensors(tmp_path / "model-00002-of-00002.safetensors", {"c": 10000})
    est = estimate(str(tmp_path), ctx=1024)
    assert est.format == "safetensors"
    assert est.weights == 20000
    assert est.kv_cache == 1024 * 4 * 2 * (32 + 32) * 2
    assert est.context_train == 32768


def test_an_hf_id_in_the_local_cache(tmp_path, monkeypatch):
    """The real cache layout: models--org--name/refs/main names the snapshot to read."""
    repo = tmp_path / "hub" / "models--acme--tiny-chat"
    rev = "0123456789abcdef0123456789abcdef01234567"
    snap = repo / "snapshots" / rev
    snap.mkdir(parents=True)
    (repo / "snapshots" / ("f" * 40)).mkdir()  # an older snapshot, not the one main names
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(rev)
    (snap / "config.json").write_text(json.dumps({"text_config": CONFIG}))
    _safetensors(snap / "model.safetensors", {"w": 12345})
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    est = estimate("acme/tiny-chat")
    assert est.weights == 12345
    assert est.layers == 4
    with pytest.raises(SafError, match="not in the local Hugging Face cache"):
        estimate("acme/absent")


def test_a_hostile_safetensors_header_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(CONFIG))
    (tmp_path / "m.safetensors").write_bytes(struct.pack("<Q", 1 << 62) + b"{}")
    with pytest.raises(SafError, match="header in a"):
        estimate(str(tmp_path))
    _safetensors(tmp_path / "m.safetensors", {"w": 10})
    raw = (tmp_path / "m.safetensors").read_bytes().replace(b"[0, 10]", b"[0, 99]")  # same length
    (tmp_path / "m.safetensors").write_bytes(raw)
    with pytest.raises(SafError, match="outside the file"):
        estimate(str(tmp_path))


def test_a_folder_without_config_and_a_missing_path(tmp_path):
    with pytest.raises(SafError, match="no config.json"):
        estimate(str(tmp_path))
    with pytest.raises(SafError, match="no such file or folder"):
        estimate(str(tmp_path / "nothing.gguf"))


def test_a_split_gguf_counts_every_split(tmp_path):
    """A model cut by gguf-split: the weights of every NAME-0000i-of-0000n.gguf, read from
    the first; a missing split or a split that is not named so is refused."""
    first = write_tiny_llama(tmp_path / "m-00001-of-00002.gguf",
                             extra={"split.no": 0, "split.count": 2})
    second = write_tiny_llama(tmp_path / "m-00002-of-00002.gguf", layers=3,
                              extra={"split.no": 1, "split.count": 2})
    est = estimate(str(first))
    assert est.weights == read_gguf(first).data_bytes + read_gguf(second).data_bytes
    second.unlink()
    with pytest.raises(SafError, match=r"split 2 of 2 \(m-00002-of-00002.gguf\) is missing"):
        estimate(str(first))
    odd = first.rename(tmp_path / "renamed.gguf")
    with pytest.raises(SafError, match="not named"):
        estimate(str(odd))


def test_a_quantized_kv_cache_takes_less(tmp_path):
    path = write_tiny_llama(tmp_path / "m.gguf")
    assert estimate(str(path), ctx=512, kv_bytes=1).kv_cache * 2 == estimate(
        str(path), ctx=512).kv_cache
