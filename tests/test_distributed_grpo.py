"""One data-parallel GRPO step on two ranks (over loopback, and one rank per network namespace over
veth) equals the same step in one process: the groups sample the same completions wherever they are
drawn, and the LoRA weights after the update agree within float tolerance. Uses the trainer's own
sampling, packing, loss and LoRA code."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, workbench_env
from netns import needs_namespaces, two_hosts

pytestmark = pytest.mark.slow

# Runs as one process (a group of one) or as each of two ranks; each writes its results to a file.
STEP = r"""
import json, sys
import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
from mlx.utils import tree_flatten, tree_map
from pathlib import Path
from workbench.distributed.data_parallel import all_sum_numbers, group_seed, my_share, sum_gradients
from workbench.engine.loader import load_model
from workbench.train.checkpoint import apply_lora
from workbench.train.config import LoraConfig
from workbench.train.grpo import Normaliser, group_advantages, grpo_loss, pack_group
from workbench.train.rollout import sample_group

group = mx.distributed.init()
rank, size = group.rank(), group.size()
loaded = load_model(Path(sys.argv[1]))
model, tokenizer = loaded.model, loaded.tokenizer
mx.random.seed(0)  # the same LoRA initialisation on every rank
apply_lora(model, LoraConfig(rank=4))
prompts = ["What is 12+30?", "What is 7+5?", "What is 3+4?", "What is 20+22?", "What is 9+9?"]
G, STEP_NO, SEED = 3, 1, 7
mine = my_share(len(prompts), rank, size)
groups = {}
for i in mine:
    mx.random.seed(group_seed(SEED, STEP_NO, i))
    ids = tokenizer.encode("<|user|>" + prompts[i] + "<|assistant|><think>", add_special_tokens=False)
    groups[i] = sample_group(model, ids, G, 24, list(tokenizer.eos_token_ids), temperature=1.0)
# A made-up reward (length parity and digits) so that advantages differ within groups.
rewards = {i: [float(len(c) % 3) + 0.5 * sum(t < 64 for t in c) / max(len(c), 1) for c in g.completions] for i, g in groups.items()}
packed = {i: pack_group(g.prompt_ids, g.completions, tokenizer.eos_token_id, g.finished) for i, g in groups.items()}
completions, tokens = all_sum_numbers([len(groups) * G, sum(float(p[2].sum().item()) for p in packed.values())], group)
norm = Normaliser("dapo", completions=int(completions), tokens=int(tokens), max_tokens=24)
loss_and_grad = nn.value_and_grad(model, lambda m, *a: grpo_loss(m, *a))
grads, loss_sum = None, 0.0
for i in mine:
    adv = mx.array(group_advantages(rewards[i], True), dtype=mx.float32)
    (loss, _), g = loss_and_grad(model, *packed[i], adv, None, None, norm, 0.2, 0.28, 0.0, 1.0)
    grads = g if grads is None else tree_map(mx.add, grads, g)
    loss_sum += loss.item()
grads = sum_gradients(grads, group)
loss_total = all_sum_numbers([loss_sum], group)[0]
before = mx.concatenate([v.reshape(-1) for _, v in sorted(tree_flatten(model.trainable_parameters()))])
grads, _ = optim.clip_grad_norm(grads, 1.0)
optimizer = optim.Adam(learning_rate=1e-2)
optimizer.update(model, grads)
mx.eval(model.trainable_parameters())
flat = mx.concatenate([v.reshape(-1) for _, v in sorted(tree_flatten(model.trainable_parameters()))])
out = {"completions": {i: g.completions for i, g in groups.items()}, "loss": loss_total, "params": flat.tolist(),
       "moved": mx.abs(flat - before).max().item()}
Path(f"{sys.argv[2]}.{rank}.json").write_text(json.dumps(out))  # files: launcher output interleaves long lines
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def results(prefix: Path) -> dict:
    return {r: json.loads(Path(f"{prefix}.{r}.json").read_text()) for r in (0, 1) if Path(f"{prefix}.{r}.json").exists()}


@pytest.fixture(scope="module")
def one_process(taught_model, tmp_path_factory) -> dict:
    """The step as a group of one: what every two-rank run must equal."""
    tmp = tmp_path_factory.mktemp("grpo-one")
    single = subprocess.run([sys.executable, str(step_script(tmp)), str(taught_model), str(tmp / "one")],
                            capture_output=True, text=True, timeout=180, env=env())
    one = results(tmp / "one").get(0)
    assert one is not None, single.stderr
    assert len({len(c) for cs in one["completions"].values() for c in cs}) > 1  # the samples differ
    assert one["moved"] > 1e-4  # the step did update the adapters
    return one


def step_script(folder: Path) -> Path:
    script = folder / "step.py"
    script.write_text(STEP)
    return script


def env(**extra) -> dict:
    return workbench_env(PYTHONPATH=str(ROOT), **extra)


def assert_same_step(one: dict, two: dict, output: str) -> None:
    import numpy as np

    assert set(two) == {0, 1}, output
    # 5 groups: rank 0 draws 0-2, rank 1 draws 3-4; each group's completions are the single run's.
    assert sorted(two[0]["completions"]) == ["0", "1", "2"] and sorted(two[1]["completions"]) == ["3", "4"]
    for r in (0, 1):
        for i, completions in two[r]["completions"].items():
            assert completions == one["completions"][i]
    assert two[0]["params"] == two[1]["params"]  # the ranks stay identical
    np.testing.assert_allclose(np.array(two[0]["params"]), np.array(one["params"]), atol=1e-5)
    assert two[0]["loss"] == pytest.approx(one["loss"], rel=1e-4, abs=1e-6)


def test_two_rank_grpo_step_equals_one_process(taught_model, one_process, tmp_path):
    launch = [str(Path(sys.executable).with_name("mlx.launch")), "-n", "2", "--backend", "ring",
              "--starting-port", str(free_port()), "--", sys.executable, str(step_script(tmp_path)), str(taught_model),
              str(tmp_path / "two")]
    double = subprocess.run(launch, capture_output=True, text=True, timeout=180, env=env())
    assert_same_step(one_process, results(tmp_path / "two"), double.stdout + double.stderr)


@needs_namespaces
def test_two_ranks_in_two_namespaces_grpo_step_equals_one_process(taught_model, one_process, tmp_path):
    argv = [sys.executable, str(step_script(tmp_path)), str(taught_model), str(tmp_path / "two")]
    with two_hosts() as hosts:
        outputs = hosts.outputs(hosts.start_ranks(argv, env(), hosts.ring_hostfile(tmp_path / "ring.json"),
                                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    assert_same_step(one_process, results(tmp_path / "two"), "\n".join(outputs))
