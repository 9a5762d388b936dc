"""Tiny Qwen2 models with a byte-level (one token per byte) tokenizer, made on the fly.

Tests, benchmarks and `scripts/train_nano.py` use these instead of downloading weights: a real
mlx-lm model folder (config.json, model.safetensors, tokenizer.json, tokenizer_config.json with a
chat template) that `mlx_lm.load` and our loader read like any other.
"""

from __future__ import annotations

import json
from pathlib import Path

THINK_TOKENS = ("<think>", "</think>")
SPECIAL = ("<pad>", "<unk>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>")
EOS = "<|end|>"

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{% if m['role'] != 'assistant' %}{% else %}<|end|>{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def write_char_tokenizer(folder: Path, chat_template: str = CHAT_TEMPLATE) -> int:
    """Write tokenizer.json + tokenizer_config.json; returns the vocabulary size."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    folder.mkdir(parents=True, exist_ok=True)
    # Byte-level, one token per byte (GPT-2's byte-to-unicode map, no merges): any UTF-8 text
    # encodes, and mlx-lm streams it with its BPE detokenizer.
    byte_chars = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {tok: i for i, tok in enumerate([*SPECIAL, *THINK_TOKENS, *byte_chars])}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL])
    # <think> tags are ordinary text on output (as in the R1 distills), so decode keeps them.
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in THINK_TOKENS])
    tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": None, "eos_token": EOS, "pad_token": "<pad>", "unk_token": "<unk>",
        "model_max_length": 4096, "chat_template": chat_template,
    }, indent=1))
    return len(vocab)


def tiny_config(vocab_size: int, hidden: int = 64, layers: int = 2, heads: int = 4, kv_heads: int = 2,
                intermediate: int | None = None, max_positions: int = 4096) -> dict:
    return {
        "model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"],
        "hidden_size": hidden, "num_hidden_layers": layers, "intermediate_size": intermediate or 2 * hidden,
        "num_attention_heads": heads, "num_key_value_heads": kv_heads, "rms_norm_eps": 1e-6,
        "vocab_size": vocab_size, "rope_theta": 10000.0, "max_position_embeddings": max_positions,
        "tie_word_embeddings": True, "eos_token_id": SPECIAL.index(EOS),
    }


def save_model(folder: Path, model, config: dict) -> None:
    import mlx.core as mx
    from mlx.utils import tree_flatten

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=1))
    mx.save_safetensors(str(folder / "model.safetensors"), dict(tree_flatten(model.parameters())),
                        metadata={"format": "mlx"})


def build_model(config: dict, seed: int = 0):
    import mlx.core as mx
    from mlx_lm.models import qwen2

    mx.random.seed(seed)
    model = qwen2.Model(qwen2.ModelArgs.from_dict(config))
    mx.eval(model.parameters())
    return model


def make_tiny_model(folder: Path, seed: int = 0, **sizes) -> Path:
    """A randomly initialised tiny model folder."""
    folder = Path(folder)
    vocab_size = write_char_tokenizer(folder)
    config = tiny_config(vocab_size, **sizes)
    save_model(folder, build_model(config, seed), config)
    return folder


def make_bench_model(folder: Path, hidden: int = 512, layers: int = 8, heads: int = 8, kv_heads: int = 4,
                     seed: int = 0, max_positions: int = 65536) -> Path:
    """A random model for `scripts/bench_*.py` that never stops early (its eos id is outside the
    vocabulary): every run generates all the tokens it is asked for. One token per character."""
    folder = make_tiny_model(folder, seed=seed, hidden=hidden, layers=layers, heads=heads, kv_heads=kv_heads,
                             max_positions=max_positions)
    config = json.loads((folder / "config.json").read_text())
    config["eos_token_id"] = config["vocab_size"] + 1
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def teach(folder: Path, examples: list[tuple[str, str]], steps: int = 300, lr: float = 3e-3, seed: int = 0) -> float:
    """Fit the model in `folder` to answer each chat prompt with its reply (full SFT); returns the last loss.

    `reply` is everything the model writes after the generation prompt, e.g. "3+4 is 7.</think>7".
    The model learns to end with <|end|>. Enough for tests that need a model that says known things.
    """
    import mlx.core as mx
    import mlx.nn as nn
    import mlx.optimizers as optim
    from tokenizers import Tokenizer

    from workbench.engine.prompt import ensure_think_prefix

    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text())
    model = build_model(config, seed)
    model.load_weights(str(folder / "model.safetensors"))
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    from jinja2 import Template

    template = Template(json.loads((folder / "tokenizer_config.json").read_text())["chat_template"])
    rows = []
    for prompt, reply in examples:
        rendered = template.render(messages=[{"role": "user", "content": prompt}], add_generation_prompt=True)
        head = tok.encode(ensure_think_prefix(rendered)).ids
        tail = tok.encode(reply + EOS).ids
        rows.append((head + tail, len(head)))
    width = max(len(ids) for ids, _ in rows)
    ids = mx.array([r + [0] * (width - len(r)) for r, _ in rows])
    mask = mx.array([[1.0 if start <= j + 1 < len(r) else 0.0 for j in range(width - 1)] for r, start in rows])

    def loss_fn(m):
        logits = m(ids[:, :-1])
        ce = nn.losses.cross_entropy(logits, ids[:, 1:], reduction="none")
        return (ce * mask).sum() / mask.sum()

    optimizer = optim.Adam(learning_rate=lr)
    step = nn.value_and_grad(model, loss_fn)
    loss = mx.array(0.0)
    for _ in range(steps):
        loss, grads = step(model)
        optimizer.update(model, grads)
        mx.eval(model.parameters(), optimizer.state, loss)
    save_model(folder, model, config)
    return loss.item()
