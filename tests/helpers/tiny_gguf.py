"""A tiny llama-architecture GGUF model, written by the test itself (no download).

Two layers, 64 wide, 4 heads, random weights (a fixed seed), and a byte-level vocabulary of
354 tokens: <unk> <s> </s>, the 95 printable ASCII characters as normal tokens, and the 256
byte tokens <0x00>..<0xFF> that llama.cpp's SentencePiece tokenizer falls back to, so any
prompt tokenizes. The output rows of every token but the printable ones are zero, so with
random weights the argmax is always a printable character (the stream is valid UTF-8 text,
one character per token). About 0.5 MB of float32. llama.cpp loads it and streams
completions from it at thousands of tokens a second on one core.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

EMBED = 64
LAYERS = 2
HEADS = 4
FFN = 128
PRINTABLE = [chr(c) for c in range(32, 127)]


def vocabulary() -> tuple[list[str], list[float], list[int]]:
    import gguf

    types = gguf.TokenType
    tokens = ["<unk>", "<s>", "</s>"]
    kinds = [types.UNKNOWN, types.CONTROL, types.CONTROL]
    # SentencePiece writes a space as U+2581.
    tokens += ["\u2581" if c == " " else c for c in PRINTABLE]
    kinds += [types.NORMAL] * len(PRINTABLE)
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    kinds += [types.BYTE] * 256
    scores = [0.0] * 3 + [-float(i) for i in range(len(PRINTABLE))] + [-1000.0] * 256
    return tokens, scores, [int(k) for k in kinds]


def write_tiny_llama(path: Path, seed: int = 7, *, layers: int = LAYERS, embed: int = EMBED,
                     heads: int = HEADS, heads_kv: int | None = None, ffn: int = FFN,
                     context: int = 512, extra: dict[str, int] | None = None) -> Path:
    """The model above; the placement tests write it at other sizes (more layers, wider,
    fewer KV heads) to check saf's memory estimate against llama.cpp's own figures."""
    import gguf

    tokens, scores, kinds = vocabulary()
    vocab = len(tokens)
    rng = np.random.default_rng(seed)

    def rand(*shape: int, scale: float = 0.2) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("saf-tiny-test-llama")
    writer.add_context_length(context)
    writer.add_embedding_length(embed)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(ffn)
    writer.add_head_count(heads)
    writer.add_head_count_kv(heads if heads_kv is None else heads_kv)
    writer.add_rope_dimension_count(embed // heads)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(kinds)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    for key, value in (extra or {}).items():  # e.g. split.count, as llama.cpp's gguf-split
        writer.add_uint16(key, value)

    kv_width = embed // heads * (heads if heads_kv is None else heads_kv)
    writer.add_tensor("token_embd.weight", rand(vocab, embed, scale=1.0))
    writer.add_tensor("output_norm.weight", np.ones(embed, dtype=np.float32))
    output = rand(vocab, embed, scale=1.0)
    printable = np.zeros(vocab, dtype=bool)
    printable[3:3 + len(PRINTABLE)] = True
    output[~printable] = 0.0  # only printable characters can win the argmax
    writer.add_tensor("output.weight", output)
    for i in range(layers):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(embed, dtype=np.float32))
        writer.add_tensor(f"blk.{i}.attn_q.weight", rand(embed, embed))
        writer.add_tensor(f"blk.{i}.attn_k.weight", rand(kv_width, embed))
        writer.add_tensor(f"blk.{i}.attn_v.weight", rand(kv_width, embed))
        writer.add_tensor(f"blk.{i}.attn_output.weight", rand(embed, embed))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(embed, dtype=np.float32))
        writer.add_tensor(f"blk.{i}.ffn_gate.weight", rand(ffn, embed))
        writer.add_tensor(f"blk.{i}.ffn_up.weight", rand(ffn, embed))
        writer.add_tensor(f"blk.{i}.ffn_down.weight", rand(embed, ffn))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def write_corrupt(path: Path) -> Path:
    """A file that starts like a GGUF model and is not one: llama.cpp refuses to load it."""
    path.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + bytes(range(256)) * 64)
    return path
