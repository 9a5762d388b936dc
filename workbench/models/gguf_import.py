"""Turn a GGUF file (llama.cpp, Ollama, LM Studio) into an mlx-lm model folder.

- config.json from the GGUF metadata (llama, qwen2 and qwen3 architectures);
- tokenizer.json rebuilt with `tokenizers` from the GGUF vocabulary, merges and special tokens
  (byte-level BPE, `tokenizer.ggml.model == "gpt2"`, as in Llama 3, Qwen2 and the R1 distills),
  the chat template carried over into tokenizer_config.json;
- weights read with `mx.load` (MLX reads GGUF): Q4_0, Q4_1 and Q8_0 stay quantized (MLX's affine
  layout, group size 32); other quantized types arrive dequantized and are requantized with
  `mx.quantize`, saying so; F16/F32/BF16 matrices stay as they are unless --bits is given.
- llama.cpp stores llama's Q and K projections permuted for its interleaved rotary embedding; we undo
  that, so the folder holds the usual (Hugging Face) layout every mlx-lm tool expects. Qwen2 and Qwen3
  use the rotate-half (NEOX) rotary in llama.cpp too, so their weights are not permuted.

MLX is imported inside the functions that need it: `workbench import --help` stays cheap.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Callable

from workbench.errors import UserError
from workbench.models.catalog import find_family, profile_toml
from workbench.models.local import check_model_name
from workbench.models.manifest import hashed_records, write_manifest
from workbench.paths import user_models_dir

ARCHITECTURES = ("llama", "qwen2", "qwen3")
HF_CLASSES = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM"}
KEPT_QUANTIZED = {"Q4_0": 4, "Q4_1": 4, "Q8_0": 8}  # MLX loads these as affine, group size 32
FLOAT_TYPES = ("F32", "F16", "BF16")
GROUP_SIZE = 64  # for tensors we quantize ourselves (mlx-lm's default)

# llama.cpp's pre-tokenizer names -> the split regex of the original tokenizer.json.
GPT2_SPLIT = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_SPLIT = LLAMA3_SPLIT.replace(r"\p{N}{1,3}", r"\p{N}")
PRE_TOKENIZERS = {  # name -> (split regex, digits one by one first)
    "default": (GPT2_SPLIT, False), "gpt-2": (GPT2_SPLIT, False), "smollm": (GPT2_SPLIT, True),
    "llama-bpe": (LLAMA3_SPLIT, False), "llama3": (LLAMA3_SPLIT, False),
    "qwen2": (QWEN2_SPLIT, False), "deepseek-r1-qwen": (QWEN2_SPLIT, False),
}

TENSOR_NAMES = {  # GGUF tensor name -> mlx-lm parameter name ({i}: layer)
    "token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head",
    "blk.{i}.attn_norm": "model.layers.{i}.input_layernorm",
    "blk.{i}.ffn_norm": "model.layers.{i}.post_attention_layernorm",
    "blk.{i}.attn_q": "model.layers.{i}.self_attn.q_proj", "blk.{i}.attn_k": "model.layers.{i}.self_attn.k_proj",
    "blk.{i}.attn_v": "model.layers.{i}.self_attn.v_proj", "blk.{i}.attn_output": "model.layers.{i}.self_attn.o_proj",
    "blk.{i}.ffn_gate": "model.layers.{i}.mlp.gate_proj", "blk.{i}.ffn_up": "model.layers.{i}.mlp.up_proj",
    "blk.{i}.ffn_down": "model.layers.{i}.mlp.down_proj",
    "blk.{i}.attn_q_norm": "model.layers.{i}.self_attn.q_norm", "blk.{i}.attn_k_norm": "model.layers.{i}.self_attn.k_norm",
}
_NAME_PATTERNS = [(re.compile("^" + re.escape(k).replace(r"\{i\}", r"(\d+)") + r"\.(weight|bias)$"), v)
                  for k, v in TENSOR_NAMES.items()]


def mlx_name(gguf_name: str) -> str | None:
    for pattern, target in _NAME_PATTERNS:
        m = pattern.match(gguf_name)
        if m:
            *layer, kind = m.groups()
            return target.format(i=layer[0] if layer else "") + "." + kind
    return None


def read_tensor_index(path: Path) -> dict:
    """Tensor name -> (GGML type name, numpy shape, absolute byte offset), from the GGUF header alone
    (the gguf package's reader turns every vocabulary string into a numpy view: seconds on a real model)."""
    import mmap
    import struct

    from gguf import GGMLQuantizationType, GGUFValueType

    scalar = {GGUFValueType.UINT8: 1, GGUFValueType.INT8: 1, GGUFValueType.UINT16: 2, GGUFValueType.INT16: 2,
              GGUFValueType.UINT32: 4, GGUFValueType.INT32: 4, GGUFValueType.FLOAT32: 4, GGUFValueType.BOOL: 1,
              GGUFValueType.UINT64: 8, GGUFValueType.INT64: 8, GGUFValueType.FLOAT64: 8}
    if path.stat().st_size < 24:  # magic, version, two counts
        raise UserError(f"{path}: not a GGUF file ({path.stat().st_size} bytes, too short for a GGUF header)")
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        pos = 0

        def read(fmt):
            nonlocal pos
            values = struct.unpack_from("<" + fmt, buf, pos)
            pos += struct.calcsize("<" + fmt)
            return values if len(values) > 1 else values[0]

        def string():
            nonlocal pos
            n = read("Q")  # read() moves pos: never `pos += read(...)`
            pos += n
            return bytes(buf[pos - n:pos]).decode("utf-8", "replace")

        def skip(vtype):
            nonlocal pos
            if vtype == GGUFValueType.STRING:
                n = read("Q")
                pos += n
            elif vtype == GGUFValueType.ARRAY:
                etype, count = GGUFValueType(read("I")), read("Q")
                if etype in scalar:
                    pos += scalar[etype] * count
                else:
                    for _ in range(count):
                        skip(etype)
            else:
                pos += scalar[GGUFValueType(vtype)]

        try:
            if read("4s") != b"GGUF":
                raise UserError(f"{path}: not a GGUF file (no GGUF magic number)")
            read("I")  # version
            n_tensors, n_kv = read("QQ")
            alignment = 32
            for _ in range(n_kv):
                key, vtype = string(), read("I")
                if key == "general.alignment" and vtype == GGUFValueType.UINT32:
                    alignment = read("I")
                else:
                    skip(GGUFValueType(vtype))
            infos = {}
            for _ in range(n_tensors):
                name = string()
                dims = read("Q" * read("I"))
                dims = (dims,) if isinstance(dims, int) else dims
                infos[name] = (GGMLQuantizationType(read("I")).name, tuple(reversed(dims)), read("Q"))
            data_start = -(-pos // alignment) * alignment
        except (struct.error, ValueError, OverflowError) as e:
            raise UserError(f"{path}: not a readable GGUF file (header: {e})") from None
        size = len(buf)
    index = {name: (t, shape, data_start + offset) for name, (t, shape, offset) in infos.items()}
    if any(offset > size for _, _, offset in index.values()):
        raise UserError(f"{path}: truncated (tensor data ends before the header says)")
    return index


def dequantize_raw(path: Path, index: dict, name: str, rows: int | None = None):
    """float32 numpy array of a tensor (its first `rows` rows), dequantized by the gguf package (llama.cpp's own)."""
    import gguf
    import numpy as np

    gtype, shape, offset = index[name]
    qtype = gguf.GGMLQuantizationType[gtype]
    block, type_size = gguf.GGML_QUANT_SIZES[qtype]
    row_bytes = shape[-1] // block * type_size
    n_rows = int(np.prod(shape[:-1])) if rows is None else min(rows, int(np.prod(shape[:-1])))
    raw = np.memmap(path, dtype=np.uint8, mode="r", offset=offset, shape=(n_rows, row_bytes))
    try:
        data = gguf.quants.dequantize(np.array(raw), qtype)
    except NotImplementedError:
        raise UserError(f"{path}: tensor {name} has type {gtype}, which the gguf package cannot read") from None
    return data.astype(np.float32).reshape((n_rows, shape[-1]) if rows is not None else shape)


def mlx_reads_correctly(path: Path, index: dict, arrays: dict, gtype: str) -> bool | None:
    """Spot-check MLX's quantized reading of `gtype` against the gguf package on a few rows (MLX releases
    have misread GGUF types before: Q4_1 until mid-2026, Q4_K's odd sub-blocks in 0.32)."""
    import mlx.core as mx
    import numpy as np

    name = next((n for n, (t, shape, _) in index.items() if t == gtype and len(shape) == 2
                 and n.endswith(".weight") and n[: -len(".weight")] + ".scales" in arrays), None)
    if name is None:
        return None  # nothing MLX returned quantized to check
    base = name[: -len(".weight")]
    want = dequantize_raw(path, index, name, rows=4)
    got = mx.dequantize(arrays[name][:4], arrays[f"{base}.scales"][:4], arrays[f"{base}.biases"][:4],
                        group_size=32, bits=KEPT_QUANTIZED[gtype])
    got = np.array(got.astype(mx.float32))
    return got.shape == want.shape and float(np.abs(got - want).max()) <= 1e-3 + 2e-3 * float(np.abs(want).max())


def read_gguf(path: Path) -> tuple[dict | None, dict, dict]:
    """(MLX arrays, metadata, tensor index). MLX reads the file only when it holds a type MLX keeps quantized
    (or only floats): for K-quant files it would expand every tensor to fp16 in memory, for nothing.
    Arrays are None when MLX was not asked, {} when it could not read the file."""
    import mlx.core as mx

    index = read_tensor_index(path)
    types = {t for t, _, _ in index.values()}
    if types & set(KEPT_QUANTIZED) or types <= {"F32", "F16"}:
        try:
            arrays, meta = mx.load(str(path), return_metadata=True)
            meta = {k: (v.tolist() if v.ndim else v.item()) if isinstance(v, mx.array) else v for k, v in meta.items()}
            return arrays, meta, index
        except Exception:  # noqa: BLE001 - a type MLX cannot convert (Q5_0, IQ*...), or a damaged file
            arrays = {}
    else:
        arrays = None
    import gguf

    try:
        reader = gguf.GGUFReader(path)
    except Exception as e:  # noqa: BLE001
        raise UserError(f"{path}: not a readable GGUF file ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    return arrays, {key: field.contents() for key, field in reader.fields.items()}, index


def config_from_metadata(meta: dict, tensor_types: dict, path: Path) -> dict:
    arch = meta.get("general.architecture")
    if arch not in ARCHITECTURES:
        raise UserError(f"{path}: architecture '{arch}' is not supported (supported: {', '.join(ARCHITECTURES)})")

    def get(key, default=None):
        value = meta.get(f"{arch}.{key}", default)
        if value is None:
            raise UserError(f"{path}: metadata '{arch}.{key}' is missing")
        return value

    heads = int(get("attention.head_count"))
    hidden = int(get("embedding_length"))
    config = {
        "model_type": arch,
        "architectures": [HF_CLASSES[arch]],
        "hidden_size": hidden, "num_hidden_layers": int(get("block_count")),
        "intermediate_size": int(get("feed_forward_length")), "num_attention_heads": heads,
        "num_key_value_heads": int(get("attention.head_count_kv", heads)),
        "rms_norm_eps": float(get("attention.layer_norm_rms_epsilon", 1e-6)),
        "rope_theta": float(get("rope.freq_base", 10000.0)),
        "max_position_embeddings": int(get("context_length", 4096)),
        "vocab_size": int(meta.get(f"{arch}.vocab_size") or len(meta.get("tokenizer.ggml.tokens") or [])),
        "tie_word_embeddings": "output.weight" not in tensor_types,
    }
    head_dim = int(meta.get(f"{arch}.attention.key_length") or hidden // heads)
    if head_dim != hidden // heads or arch == "qwen3":
        config["head_dim"] = head_dim
    if arch == "llama":
        config["attention_bias"] = "blk.0.attn_q.bias" in tensor_types
        config["mlp_bias"] = "blk.0.ffn_up.bias" in tensor_types
    for key, name in (("tokenizer.ggml.bos_token_id", "bos_token_id"), ("tokenizer.ggml.eos_token_id", "eos_token_id")):
        if meta.get(key) is not None:
            config[name] = int(meta[key])
    return config


def check_counts(config: dict, index: dict, path: Path) -> None:
    """The metadata's sizes against the tensors the file holds, before anything is built: a header that
    says 10^6 blocks would otherwise import and then exhaust memory when loaded."""
    arch = config["model_type"]
    blocks = {int(m.group(1)) for name in index if (m := re.match(r"blk\.(\d+)\.", name))}
    if config["num_hidden_layers"] != len(blocks) or blocks != set(range(len(blocks))):
        raise UserError(f"{path}: metadata '{arch}.block_count' is {config['num_hidden_layers']}, but the file holds "
                        f"tensors for {len(blocks)} blocks; the file is inconsistent (convert or download it again)")
    embedding = index.get("token_embd.weight")
    if embedding is None:
        raise UserError(f"{path}: no token_embd.weight tensor")
    hidden = embedding[1][-1]  # elements per row, whatever the type
    if config["hidden_size"] != hidden:
        raise UserError(f"{path}: metadata '{arch}.embedding_length' is {config['hidden_size']}, but token_embd.weight "
                        f"has rows of {hidden}; the file is inconsistent (convert or download it again)")


def build_tokenizer(meta: dict, folder: Path, path: Path, log: Callable[[str], None]) -> None:
    """tokenizer.json + tokenizer_config.json (with the chat template) from the GGUF vocabulary."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors

    kind = meta.get("tokenizer.ggml.model")
    if kind != "gpt2":
        raise UserError(f"{path}: tokenizer model '{kind}' is not supported (only byte-level BPE, 'gpt2')")
    tokens = list(meta.get("tokenizer.ggml.tokens") or [])
    types = list(meta.get("tokenizer.ggml.token_type") or [1] * len(tokens))
    merges = [tuple(m.split(" ", 1)) for m in meta.get("tokenizer.ggml.merges") or []]
    if not tokens or not merges:
        raise UserError(f"{path}: no tokenizer vocabulary or merges in the GGUF metadata")
    pre = meta.get("tokenizer.ggml.pre", "default")
    if pre not in PRE_TOKENIZERS:
        log(f"note: pre-tokenizer '{pre}' unknown here; using GPT-2's (text splits may differ slightly)")
    split, digits = PRE_TOKENIZERS.get(pre, PRE_TOKENIZERS["default"])

    vocab = {tok: i for i, tok in enumerate(tokens)}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, ignore_merges=split == LLAMA3_SPLIT))
    steps = [pre_tokenizers.Digits(individual_digits=True)] if digits else []
    steps += [pre_tokenizers.Split(Regex(split), behavior="isolated"),
              pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(steps)
    tokenizer.decoder = decoders.ByteLevel()
    # GGUF token types: 3 control (special), 4 user-defined (added, e.g. <think>)
    added = [AddedToken(tok, special=t == 3, normalized=False) for tok, t in zip(tokens, types) if t in (3, 4)]
    tokenizer.add_tokens(added)

    def token(key):
        i = meta.get(key)
        return tokens[int(i)] if i is not None and 0 <= int(i) < len(tokens) else None

    bos, eos = token("tokenizer.ggml.bos_token_id"), token("tokenizer.ggml.eos_token_id")
    add_bos = bool(meta.get("tokenizer.ggml.add_bos_token", False)) and bos is not None
    if add_bos:
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, vocab[bos])])
    tokenizer.save(str(folder / "tokenizer.json"))
    template = meta.get("tokenizer.chat_template")
    if not template:
        raise UserError(f"{path}: no chat template in the GGUF metadata (tokenizer.chat_template)")
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": bos, "eos_token": eos,
        "pad_token": token("tokenizer.ggml.padding_token_id"), "unk_token": token("tokenizer.ggml.unknown_token_id"),
        "add_bos_token": add_bos, "clean_up_tokenization_spaces": False,
        "model_max_length": int(meta.get(f"{meta['general.architecture']}.context_length", 4096)),
        "chat_template": template,
    }, indent=1))


# Llama 3.x context extension. llama.cpp keeps only its effect (`rope_freqs.weight`, one factor per rotary
# frequency); we find which published setting produced it, for mlx-lm's "llama3" rope.
LLAMA3_SCALINGS = [{"rope_type": "llama3", "factor": f, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                    "original_max_position_embeddings": 8192} for f in (8.0, 32.0, 16.0)]  # 3.1/3.3, 3.2, other


def llama3_factors(scaling: dict, base: float, dims: int) -> list[float]:
    """The per-frequency period multipliers mlx-lm's Llama3RoPE applies (what llama.cpp stores as rope_freqs)."""
    import math

    old, low, high, factor = (scaling["original_max_position_embeddings"], scaling["low_freq_factor"],
                              scaling["high_freq_factor"], scaling["factor"])
    out = []
    for i in range(0, dims, 2):
        wavelen = 2 * math.pi * base ** (i / dims)
        if wavelen < old / high:
            out.append(1.0)
        elif wavelen > old / low:
            out.append(factor)
        else:
            smooth = (old / wavelen - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return out


def match_rope_scaling(rope_freqs: list[float], base: float, dims: int) -> dict | None:
    for scaling in LLAMA3_SCALINGS:
        expected = llama3_factors(scaling, base, dims)
        if len(expected) == len(rope_freqs) and all(abs(a - b) <= 1e-3 * b for a, b in zip(rope_freqs, expected)):
            return scaling
    return None


def unpermute_rows(w, n_head: int):
    """Undo llama.cpp's Q/K permutation (rows reordered for interleaved rotary pairs); works on packed weights,
    scales and biases alike since it only moves whole output rows."""
    rows = w.shape[0]
    return w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def convert_weights(path: Path, arrays: dict | None, index: dict, config: dict, bits: int | None,
                    log: Callable[[str], None]) -> dict:
    import mlx.core as mx

    types = {n: t for n, (t, _, _) in index.items()}
    present = set(types.values())
    # Taken from MLX as they are: F32/F16, and Q4_0/Q4_1/Q8_0 when a spot check agrees with the gguf package.
    # Everything else is dequantized by the gguf package: MLX drops some types, fails on others, and
    # (0.32) misreads Q4_K.
    if arrays is None:
        log(f"no tensor type MLX keeps quantized ({', '.join(sorted(present))}): every tensor comes from the gguf package")
    elif not arrays:
        log(f"MLX cannot read this file ({', '.join(sorted(present))}): every tensor comes from the gguf package")
    arrays = arrays or {}
    checks = {t: mlx_reads_correctly(path, index, arrays, t) for t in present & set(KEPT_QUANTIZED)}
    trusted = {"F32", "F16"} | {t for t, ok in checks.items() if ok}
    if any(ok is False for ok in checks.values()):
        log(f"this MLX misreads {', '.join(sorted(t for t, ok in checks.items() if ok is False))} "
            "(checked against the gguf package): dequantizing those instead")
    weights, requantized, kept, skipped = {}, set(), set(), []
    quarter = len(types) // 4 if len(types) > 40 else 0  # big files take minutes: say how far along
    for i, (gguf_name, gtype) in enumerate(types.items(), 1):
        if quarter and i % quarter == 0 and i < len(types):
            log(f"{i}/{len(types)} tensors converted")
        name = mlx_name(gguf_name)
        if name is None:
            if gguf_name != "rope_freqs.weight":  # read into config.json's rope_scaling
                skipped.append(gguf_name)
            continue
        from_mlx = gtype in trusted and gguf_name in arrays
        base = gguf_name[: -len(".weight")] if gguf_name.endswith(".weight") else None
        if from_mlx and gtype in KEPT_QUANTIZED and base and f"{base}.scales" in arrays:
            parts = {"weight": arrays[gguf_name], "scales": arrays[f"{base}.scales"], "biases": arrays[f"{base}.biases"]}
            kept.add(gtype)
        else:
            if from_mlx:
                w = arrays[gguf_name]
            else:
                w = mx.array(dequantize_raw(path, index, gguf_name)).astype(mx.bfloat16 if gtype == "BF16" else mx.float16)
            # quantized types come back as floats: quantize them again, 8 bits for 5- and 6-bit types, else 4;
            # float matrices stay as they are unless --bits asks
            target = bits or (8 if _bits_of(gtype) > 4 else 4)
            group = next((g for g in (GROUP_SIZE, 32) if w.ndim == 2 and w.shape[-1] % g == 0), None)
            if group and (gtype not in FLOAT_TYPES or bits):
                parts = dict(zip(("weight", "scales", "biases"), mx.quantize(w.astype(mx.float16), group_size=group, bits=target)))
                requantized.add(f"{gtype} -> {target}-bit")
            else:
                parts = {"weight": w}
        prefix = name.rsplit(".", 1)[0]
        if config["model_type"] == "llama" and prefix.endswith(("q_proj", "k_proj")):
            n = config["num_attention_heads"] if prefix.endswith("q_proj") else config["num_key_value_heads"]
            parts = {k: unpermute_rows(v, n) for k, v in parts.items()}
        if name.endswith(".bias"):
            weights[name] = parts["weight"]
        else:
            weights.update({f"{prefix}.{k}": v for k, v in parts.items()})
        mx.eval(list(parts.values()))  # one tensor at a time: never the whole model dequantized at once
    if kept:
        log(f"kept quantized as in the file: {', '.join(sorted(kept))}")
    if requantized:
        log(f"dequantized (gguf package) and requantized with mx.quantize: {', '.join(sorted(requantized))}")
    if skipped:
        log(f"ignored tensors with no place in the model: {', '.join(skipped[:5])}{' ...' if len(skipped) > 5 else ''}")
    if "model.embed_tokens.weight" not in weights:
        raise UserError(f"{path}: no token_embd.weight tensor")
    return weights


def _bits_of(gtype: str) -> int:
    m = re.match(r"I?Q(\d)", gtype)
    return int(m.group(1)) if m else 16


def default_name(path: Path, meta: dict) -> str:
    """The file name, or the model's own name for Ollama's content-addressed blobs (sha256-...)."""
    stem = path.stem if not path.name.startswith("sha256") else str(meta.get("general.name") or "imported")
    return re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-.") or "imported"


def import_gguf(path: str | Path, name: str | None = None, bits: int | None = None, force: bool = False,
                log: Callable[[str], None] = print) -> Path:
    """Write `$WORKBENCH_HOME/models/<name>` from a GGUF file; returns the folder."""
    import mlx.core as mx

    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    if bits not in (None, 4, 8):
        raise UserError(f"--bits must be 4 or 8, not {bits}")
    if name is not None:
        check_model_name(name)
    arrays, meta, index = read_gguf(path)
    tensor_types = {n: t for n, (t, _, _) in index.items()}
    if int(meta.get("split.count") or 1) > 1:
        raise UserError(f"{path}: part of a split GGUF ({meta['split.count']} files); merge them first "
                        "(`llama-gguf-split --merge FIRST.gguf OUT.gguf`)")
    try:
        config = config_from_metadata(meta, tensor_types, path)
    except (TypeError, ValueError, ZeroDivisionError) as e:
        raise UserError(f"{path}: a size in the metadata is not a usable number ({e})") from None
    check_counts(config, index, path)
    folder = user_models_dir() / (name or default_name(path, meta))
    if folder.exists() and not force:
        raise UserError(f"{folder}: already exists (choose --name, or --force to replace it)")
    tmp = folder.with_name(folder.name + ".importing")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        build_tokenizer(meta, tmp, path, log)
        weights = convert_weights(path, arrays, index, config, bits, log)
        if "rope_freqs.weight" in index:
            dims = int(meta.get(f"{config['model_type']}.rope.dimension_count") or config.get("head_dim")
                       or config["hidden_size"] // config["num_attention_heads"])
            scaling = match_rope_scaling(dequantize_raw(path, index, "rope_freqs.weight").ravel().tolist(),
                                         config["rope_theta"], dims)
            if scaling:
                config["rope_scaling"] = scaling
            else:
                log("warning: rope_freqs matches no known Llama 3 scaling; imported without it (long contexts may suffer)")
        if any(k.endswith(".scales") for k in weights):
            widths = [KEPT_QUANTIZED.get(t) or bits or (8 if _bits_of(t) > 4 else 4) for t in tensor_types.values() if t not in FLOAT_TYPES]
            # mlx-lm infers each layer's bits and group size from its scales; this is the label `workbench models` shows
            config["quantization"] = {"group_size": 32, "bits": min(widths, default=bits or 4)}
        (tmp / "config.json").write_text(json.dumps(config, indent=1))
        mx.save_safetensors(str(tmp / "model.safetensors"), weights, metadata={"format": "mlx"})
        think = "<think>" in (meta.get("tokenizer.ggml.tokens") or [])
        profile = f"# imported from {path.name}\nforce_think = {'true' if think else 'false'}\n"
        entry = find_family([str(meta.get("general.name") or ""), path.stem])
        if entry:  # a catalog model: its sampling profile and published claims
            log(f"recognised {entry.title}: profile.toml gets its sampling profile and published claims")
            profile = f"force_think = {'true' if think else 'false'}\n" + profile_toml(entry, f", imported from {path.name}")
        (tmp / "profile.toml").write_text(profile)
        write_manifest(tmp, {"source": "gguf", "gguf": str(path.resolve()), "files": hashed_records(
            tmp, ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"))})
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder
