"""`workbench train grpo`: LoRA-GRPO, top to bottom like nanoGPT's train.py.

One step: take the next prompts, sample a group of G completions per prompt (one batch each),
score every completion once with each verifier, turn rewards into group-relative advantages,
then one optimizer update (gradients accumulated over the groups) per pass over the batch.
Metrics go to metrics.jsonl, a few completions to samples.jsonl, checkpoints to checkpoint/.

Data parallel (`hosts`: under `mlx.launch`, see docs/distributed.md): each rank samples and scores
its share of the step's groups, each group from its own seed; the loss normaliser uses the step's
global counts and the gradients are summed over the ranks before clipping, so every rank makes the
one-rank update. Rank 0 gathers the numbers and writes metrics and checkpoints. Every collective
runs under a deadline (distributed/deadline.py), so a lost rank ends the run instead of hanging it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from workbench.train.config import GRPOConfig


STOP_FILE = "STOP"


def run_dir(config) -> Path:
    if config.out:
        return Path(config.out)
    name = config.name or f"{Path(config.model).name}-{time.strftime('%Y%m%d-%H%M%S')}"
    return Path("runs") / name


def make_optimizer(config):
    import mlx.optimizers as optim

    lr, steps, warmup = config.learning_rate, config.steps, config.warmup_steps
    if config.lr_schedule == "cosine":
        schedule = optim.cosine_decay(lr, max(steps - warmup, 1), lr / 10)
    elif config.lr_schedule == "linear":
        schedule = optim.linear_schedule(lr, lr / 10, max(steps - warmup, 1))
    else:
        schedule = optim.linear_schedule(lr, lr, 1)  # constant
    if warmup:
        schedule = optim.join_schedules([optim.linear_schedule(lr / 100, lr, warmup), schedule], [warmup])
    return optim.AdamW(learning_rate=schedule, weight_decay=0.0)


def thinking_share(ids: list[int], close_id: int | None) -> float:
    """Fraction of a completion's tokens before `</think>` (1.0 when never closed)."""
    if not ids:
        return 0.0
    return (ids.index(close_id) if close_id in ids else len(ids)) / len(ids)


def append_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def train_grpo(config: GRPOConfig, resume: bool = False, scorer=None, log=print,
               hosts: list[str] | None = None, deadline: float = 30.0) -> Path:
    """Run GRPO; returns the run folder. `scorer` replaces the verifier pool (tests).

    `hosts` (names by rank): this process is one rank of an `mlx.launch` group; a collective that
    waits longer than `deadline` s beyond this rank's own work for the phase ends the run.
    """
    import mlx.core as mx
    import mlx.nn as nn
    import numpy as np
    from mlx.utils import tree_map

    from workbench.distributed.data_parallel import all_sum_numbers, group_seed, my_share, sum_gradients
    from workbench.engine.events import Message
    from workbench.engine.loader import load_model
    from workbench.engine.prompt import build_prompt, opens_thinking
    from workbench.models.local import resolve_model
    from workbench.train.checkpoint import (adapter_config, adapters_off, apply_lora, cut_logs, load_checkpoint,
                                            save_adapters, save_checkpoint)
    from workbench.train.data import batch_at, load_examples
    from workbench.train.grpo import Normaliser, group_advantages, grpo_loss, pack_group, token_logprobs
    from workbench.train.rewards import pool_scorer, score_completions
    from workbench.train.rollout import sample_groups

    config.check()
    world, watchdog, control = mx.distributed.init(), None, None
    if hosts is not None:
        from workbench.distributed.deadline import Control, Watchdog, peers_text

        joining = Watchdog(deadline * 3, "the other ranks (they never joined)")
        with joining.guard("joining the ring"):
            world = mx.distributed.init(strict=True)
        watchdog = Watchdog(deadline, peers_text(world.rank(), hosts))
        control = Control(world, watchdog)
    rank, size = world.rank(), world.size()
    lead = rank == 0  # writes the run folder; the others only compute

    def collective(what: str, work_time: float, fn):
        """`fn()` (collectives) under the deadline: the peers may still be doing work like ours."""
        if watchdog is None:
            return fn()
        with watchdog.guard(what, deadline + 3 * work_time):
            return fn()

    run = run_dir(config)
    if lead:
        run.mkdir(parents=True, exist_ok=True)
    folder = resolve_model(config.model)
    loaded = load_model(folder)
    model, tokenizer, profile = loaded.model, loaded.tokenizer, loaded.profile
    # GRPO needs samples that differ: a greedy profile (temperature 0) trains at 1.0.
    temperature = config.temperature if config.temperature is not None else (profile.temperature or 1.0)
    top_p = config.top_p if config.top_p is not None else (profile.top_p or 1.0)
    mx.random.seed(config.seed)  # the same LoRA initialisation on every rank
    apply_lora(model, config.lora)
    if config.grad_checkpoint:
        from mlx_lm.tuner.trainer import grad_checkpoint

        grad_checkpoint(model.layers[0])
    optimizer = make_optimizer(config)
    lora_config = adapter_config(config.lora, str(folder))
    examples = load_examples(config.suite, config.train_size, config.seed, "train")
    held_out = load_examples(config.suite, config.eval_size, config.seed, "eval")[:config.eval_size]
    weights = dict(config.verifiers)
    scoring = {**weights, **({} if config.accuracy_verifier in weights else {config.accuracy_verifier: 0.0})}
    pool = None
    if scorer is None:
        from workbench.verify import VerifierPool

        pool = VerifierPool()
        scorer = pool_scorer(pool)
    close_ids = tokenizer.encode("</think>", add_special_tokens=False)
    close_id = close_ids[0] if len(close_ids) == 1 else None
    eos_ids = list(tokenizer.eos_token_ids)
    eos_id = tokenizer.eos_token_id

    step, position = 0, 0
    if resume:
        state = load_checkpoint(run, model, optimizer)
        step, position = state["step"], state["position"]
        if lead:
            cut_logs(run, step)  # steps logged after the checkpoint are done again
            log(f"resumed {run} at step {step}")
    elif lead:
        for name in ("metrics.jsonl", "samples.jsonl", STOP_FILE):
            (run / name).unlink(missing_ok=True)
    if lead:
        (run / "config.json").write_text(json.dumps(config.to_dict(), indent=1))

    def prompt_for(example: dict) -> str:
        return build_prompt(tokenizer, (Message("user", example["prompt"]),), force_think=profile.force_think,
                            system_prompt=profile.system_prompt)

    def loss_fn(m, *args):
        return grpo_loss(m, *args)

    loss_and_grad = nn.value_and_grad(model, loss_fn)

    try:
        while step < config.steps:
            step += 1
            t0 = time.perf_counter()
            batch = batch_at(examples, position, config.prompts_per_step, config.seed)
            position += len(batch)
            share = my_share(len(batch), rank, size)

            # 1. Rollouts: a group per prompt of this rank's share, all decoded in one batch, with the
            #    adapters on. Each group samples from its own seed, a function of (seed, step, group):
            #    a resumed run samples what it would have, and a group draws the same on whichever rank.
            model.eval()
            prompts = [prompt_for(batch[i]) for i in share]
            groups = sample_groups(model, [tokenizer.encode(p, add_special_tokens=False) for p in prompts],
                                   config.group_size, config.max_tokens, eos_ids, temperature, top_p,
                                   seeds=[group_seed(config.seed, step, i) for i in share]) if prompts else []
            texts = [[tokenizer.decode(c) for c in group.completions] for group in groups]
            verifier_examples = [{**batch[i], "think_in_prompt": opens_thinking(p)} for i, p in zip(share, prompts)]
            gen_time = time.perf_counter() - t0

            # 2. Rewards (each verifier once per completion) and group-relative advantages.
            flat_texts = [t for ts in texts for t in ts]
            flat_examples = [e for e, g in zip(verifier_examples, groups) for _ in g.completions]
            _, per_verifier = score_completions(flat_texts, flat_examples, scoring, scorer)
            score_time = time.perf_counter() - t0 - gen_time
            rewards = np.array([sum(weights[n] * per_verifier[n][i] for n in weights) for i in range(len(flat_texts))])
            rewards = rewards.reshape(len(groups), config.group_size)
            zero_std = [bool(np.all(r == r[0])) for r in rewards]
            advantages = [group_advantages(r, config.std_scaling) for r in rewards]
            used = [i for i in range(len(groups)) if not (config.loss_type == "dapo" and zero_std[i])]
            # Every group's numbers, in global order (the shares are contiguous, by rank), for the metrics.
            mine = [{"rewards": rewards[k].tolist(), "scores": {n: per_verifier[n][k * config.group_size:(k + 1) * config.group_size]
                                                               for n in scoring},
                     "texts": texts[k], "lengths": [len(c) for c in g.completions], "finished": g.finished,
                     "thinking": [thinking_share(c, close_id) for c in g.completions]} for k, g in enumerate(groups)]
            everyone = [mine] if control is None else collective(
                "waiting for the others' rollouts", time.perf_counter() - t0,
                lambda: control.gather_json(mine, "waiting for the others' rollouts"))
            step_groups = [g for rows in everyone for g in rows]

            # 3. Micro-batches of whole groups, reference and old log-probs, the step's normaliser.
            #    Each group is packed on its own: its prompt goes through the model once (`prefix`).
            per_micro = config.groups_per_micro_batch or max(len(used), 1)
            chunks = [used[k:k + per_micro] for k in range(0, len(used), per_micro)]
            packed = {i: pack_group(groups[i].prompt_ids, groups[i].completions, eos_id, groups[i].finished)
                      for i in used}
            prefix = {i: len(groups[i].prompt_ids) for i in used}
            group_adv = {i: mx.array(advantages[i], dtype=mx.float32) for i in used}
            local = [len(used) * config.group_size, sum(p[2].sum().item() for p in packed.values())]
            completions, tokens = collective("summing the step's counts", 0.0, lambda: all_sum_numbers(local, world))
            norm = Normaliser(config.loss_type, completions=int(completions), tokens=int(tokens),
                              max_tokens=config.max_tokens)
            refs, olds = dict.fromkeys(used), dict.fromkeys(used)
            if config.beta:
                with adapters_off(model):
                    refs = {i: mx.stop_gradient(token_logprobs(model, p[0], p[1], temperature, prefix[i]))
                            for i, p in packed.items()}
            if config.iterations_per_batch > 1:  # stored: later passes compare against the sampling policy
                olds = {i: mx.stop_gradient(token_logprobs(model, p[0], p[1], temperature, prefix[i]))
                        for i, p in packed.items()}
            mx.eval(list(refs.values()), list(olds.values()))

            # 4. Updates: gradients accumulated over the micro-batches, one optimizer step per pass.
            #    Summed over the ranks before clipping: every rank makes the same update.
            model.train()
            loss_total, kl_sum, clipped_sum, token_sum = 0.0, 0.0, 0.0, 0.0
            for _ in range(config.iterations_per_batch):
                t1 = time.perf_counter()
                grads, loss_total, kl_sum, clipped_sum, token_sum = None, 0.0, 0.0, 0.0, 0.0
                for chunk in chunks:  # one evaluation per micro-batch bounds the memory in use
                    for i in chunk:
                        (loss, metrics), g = loss_and_grad(model, *packed[i], group_adv[i], olds[i], refs[i], norm,
                                                           config.epsilon, config.clip_high, config.beta,
                                                           temperature, prefix[i])
                        grads = g if grads is None else tree_map(mx.add, grads, g)
                        loss_total += loss
                        kl_sum += metrics["kl_sum"]
                        clipped_sum += metrics["clipped_sum"]
                        token_sum += metrics["tokens"]
                    mx.eval(grads, loss_total, kl_sum, clipped_sum, token_sum)
                loss_total, kl_sum, clipped_sum, token_sum = (float(x) for x in (loss_total, kl_sum, clipped_sum, token_sum))
                if completions and size > 1:  # a rank without groups still joins the sum
                    if grads is None:
                        grads = tree_map(mx.zeros_like, model.trainable_parameters())

                    def summed(grads=grads):
                        out = sum_gradients(grads, world)
                        mx.eval(out)
                        return out

                    grads = collective("summing gradients", time.perf_counter() - t1, summed)
                if grads is not None:
                    if config.max_grad_norm:
                        import mlx.optimizers as optim

                        grads, _ = optim.clip_grad_norm(grads, config.max_grad_norm)
                    optimizer.update(model, grads)
                    mx.eval(model.trainable_parameters(), optimizer.state)
            model.eval()
            loss_total, kl_sum, clipped_sum, token_sum = collective(
                "summing the step's metrics", 0.0, lambda: all_sum_numbers([loss_total, kl_sum, clipped_sum, token_sum], world))

            # 5. Metrics and samples (of the whole step: every rank's groups).
            all_rewards = np.array([g["rewards"] for g in step_groups])
            scores = {n: [s for g in step_groups for s in g["scores"][n]] for n in scoring}
            all_zero_std = [bool(np.all(r == r[0])) for r in all_rewards]
            gen_tokens = sum(sum(g["lengths"]) for g in step_groups)
            step_time = time.perf_counter() - t0
            row = {
                "step": step, "loss": loss_total, "reward": float(all_rewards.mean()), "reward_std": float(all_rewards.std()),
                **{f"reward_{n}": float(np.mean(scores[n])) for n in scoring},
                "accuracy": float(np.mean([s >= 1.0 for s in scores[config.accuracy_verifier]])),
                "kl": kl_sum / token_sum if token_sum else 0.0,
                "clip_fraction": clipped_sum / token_sum if token_sum else 0.0,
                "completion_length": float(np.mean([n for g in step_groups for n in g["lengths"]])),
                "truncated": float(np.mean([not f for g in step_groups for f in g["finished"]])),
                "thinking_share": float(np.mean([t for g in step_groups for t in g["thinking"]])),
                "frac_reward_zero_std": float(np.mean(all_zero_std)),
                "groups_used": int(round(completions / config.group_size)),
                "learning_rate": float(optimizer.learning_rate.item()),
                "tokens_per_second": gen_tokens / gen_time if gen_time else 0.0,  # all ranks' tokens in rank 0's time
                "step_time": step_time, "generate_time": gen_time, "score_time": score_time,
            }
            samples = [{"step": step, "prompt": batch[i]["prompt"], "completion": g["texts"][k],
                        "reward": float(all_rewards[i, k]), **{n: g["scores"][n][k] for n in scoring}}
                       for i, g in enumerate(step_groups) for k in range(config.group_size)][:config.samples_per_step]
            if config.eval_every and step % config.eval_every == 0:
                t2, part = time.perf_counter(), [held_out[i] for i in my_share(len(held_out), rank, size)]
                correct = evaluate(model, tokenizer, part, prompt_for, config, scorer) * len(part) if part else 0.0
                correct = collective("summing the evaluation", time.perf_counter() - t2,
                                     lambda: all_sum_numbers([correct], world))[0]
                row["eval_accuracy"] = correct / max(len(held_out), 1)
            if lead:
                append_jsonl(run / "metrics.jsonl", [row])
                append_jsonl(run / "samples.jsonl", samples)
                log(row)

            # 6. Checkpoint (atomic) and the adapters as they stand; a STOP file (the TUI's stop
            #    button, or `touch RUN/STOP`) ends the run here, after a checkpoint (on every rank).
            stop = lead and (run / STOP_FILE).exists()
            if size > 1:
                stop = collective("agreeing to stop", 0.0, lambda: control.any(stop))
            if lead and (stop or step % config.checkpoint_every == 0 or step == config.steps):
                state = {"step": step, "position": position, "seed": config.seed}
                save_checkpoint(run, model, optimizer, lora_config, state)
                save_adapters(run, model, lora_config)
            if stop:
                if lead:
                    (run / STOP_FILE).unlink(missing_ok=True)
                log(f"stopped at step {step} (checkpoint saved; --resume continues)")
                break
    except RuntimeError as e:  # the ring backend: "connection to a peer was lost"
        if watchdog is None:
            raise
        watchdog.fire(f"lost {watchdog.lost} ({str(e).strip().splitlines()[0]})")
    finally:
        if pool is not None:
            pool.close()
    return run


def evaluate(model, tokenizer, examples: list[dict], prompt_for, config, scorer) -> float:
    """Greedy accuracy on the held-out split (batched, adapters on)."""
    from mlx_lm.generate import batch_generate

    from workbench.engine.prompt import opens_thinking

    prompts = [prompt_for(e) for e in examples]
    ids = [tokenizer.encode(p, add_special_tokens=False) for p in prompts]
    texts = batch_generate(model, tokenizer, ids, max_tokens=config.max_tokens, completion_batch_size=len(ids)).texts
    items = [(t, {**e, "think_in_prompt": opens_thinking(p)}) for t, e, p in zip(texts, examples, prompts)]
    scores = scorer(config.accuracy_verifier, items)
    return sum(s >= 1.0 for s in scores) / max(len(scores), 1)
