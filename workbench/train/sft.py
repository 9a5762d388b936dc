"""Supervised fine-tuning on chats with thinking: the cold start of the R1 recipe.

A training row is a chat whose last message is the assistant's reply, thinking included
(`<think>...</think>answer`, or `thinking` in its own field). The prompt is built exactly as the
engine builds it (ending in `<think>\\n`), and the loss covers only the reply tokens plus EOS.
"""

from __future__ import annotations

from pathlib import Path

from workbench.engine.events import Message
from workbench.engine.prompt import build_prompt
from workbench.engine.splitter import OPEN
from workbench.errors import UserError
from workbench.jsonl import parse_line


def read_chats(path: Path) -> list[dict]:
    """JSONL rows with "messages" (the last one the assistant's); a bad line is a one-line error."""
    rows = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read ({e})") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = parse_line(line)
            messages = row["messages"]
            ok = messages and all(isinstance(m.get("content"), str) and m.get("role") for m in messages)
        except (ValueError, KeyError, TypeError, AttributeError):
            ok = False
        if not ok or messages[-1]["role"] != "assistant":
            raise UserError(f"{path}:{n}: not a chat ending in an assistant reply ({line[:60]!r})")
        rows.append(row)
    if not rows:
        raise UserError(f"{path}: no chats")
    return rows


def reply_text(message: dict) -> str:
    """The assistant's reply as the model writes it after the prompt's `<think>\\n`."""
    content = message["content"]
    if message.get("thinking"):
        content = f"{message['thinking'].strip()}\n</think>\n{content.strip()}"
    elif content.lstrip().startswith(OPEN):
        content = content.lstrip()[len(OPEN):].lstrip("\n")
    return content


def encode_chat(tokenizer, row: dict) -> tuple[list[int], int]:
    """(token ids, prompt length) for one chat; the reply ends with EOS."""
    messages = tuple(Message(m["role"], m["content"]) for m in row["messages"][:-1])
    prompt = tokenizer.encode(build_prompt(tokenizer, messages), add_special_tokens=False)
    reply = tokenizer.encode(reply_text(row["messages"][-1]), add_special_tokens=False)
    return prompt + reply + [tokenizer.eos_token_id], len(prompt)


def make_batch(rows: list[tuple[list[int], int]], pad_id: int = 0, width: int | None = None):
    """(inputs, targets, mask) arrays: the mask is 1 on reply targets only. Rows longer than
    `width` are cut (a fixed width keeps a compiled step from recompiling)."""
    import mlx.core as mx
    import numpy as np

    width = width or max(len(ids) for ids, _ in rows)
    rows = [(r[:width], start) for r, start in rows]
    ids = np.full((len(rows), width), pad_id, dtype=np.int32)
    mask = np.zeros((len(rows), width - 1), dtype=np.float32)
    for i, (r, start) in enumerate(rows):
        ids[i, :len(r)] = r
        mask[i, start - 1:len(r) - 1] = 1.0
    return mx.array(ids[:, :-1]), mx.array(ids[:, 1:]), mx.array(mask)


def sft_loss(model, inputs, targets, mask):
    """Mean cross-entropy over reply tokens."""
    import mlx.nn as nn

    ce = nn.losses.cross_entropy(model(inputs), targets, reduction="none")
    return (ce * mask).sum() / mask.sum()


def train_sft(config, log=print) -> Path:
    """LoRA SFT on a JSONL file of chats; adapters land in the run folder. Returns it."""
    import random

    import mlx.core as mx
    import mlx.nn as nn
    import mlx.optimizers as optim

    from workbench.engine.loader import load_model
    from workbench.models.local import resolve_model
    from workbench.train.checkpoint import adapter_config, apply_lora, save_adapters
    from workbench.train.trainer import append_jsonl, make_optimizer, run_dir

    rows_raw = read_chats(Path(config.data))
    run = run_dir(config)
    run.mkdir(parents=True, exist_ok=True)
    folder = resolve_model(config.model)
    loaded = load_model(folder)
    model, tokenizer = loaded.model, loaded.tokenizer
    mx.random.seed(config.seed)
    apply_lora(model, config.lora)
    rows = [encode_chat(tokenizer, r) for r in rows_raw]
    rows = [(ids[:config.max_length], start) for ids, start in rows if start < config.max_length]
    optimizer = make_optimizer(config)
    loss_and_grad = nn.value_and_grad(model, sft_loss)
    rng = random.Random(config.seed)
    (run / "metrics.jsonl").unlink(missing_ok=True)
    model.train()
    for step in range(1, config.steps + 1):
        loss, grads = loss_and_grad(model, *make_batch([rng.choice(rows) for _ in range(config.batch_size)]))
        if config.max_grad_norm:
            grads, _ = optim.clip_grad_norm(grads, config.max_grad_norm)
        optimizer.update(model, grads)
        mx.eval(model.trainable_parameters(), optimizer.state, loss)
        append_jsonl(run / "metrics.jsonl", [{"step": step, "loss": loss.item()}])
        log({"step": step, "loss": loss.item()})
    save_adapters(run, model, adapter_config(config.lora, str(folder)))
    return run
