"""Run configurations: dataclasses with `from_dict`, readable from a TOML file (`--config run.toml`).

Command-line flags override the file; the file overrides these defaults. Every run writes the
config it used to `runs/<name>/config.json`, so a run can be read (and resumed) later.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from workbench.errors import UserError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

LOSS_TYPES = ("grpo", "dr_grpo", "dapo")


@dataclass
class LoraConfig:
    rank: int = 8
    alpha: float = 16.0  # mlx-lm's "scale" is alpha / rank
    dropout: float = 0.0
    num_layers: int = -1  # the last N transformer blocks; -1 = all
    keys: list[str] | None = None  # e.g. ["self_attn.q_proj", "self_attn.v_proj"]; None = mlx-lm's default

    @property
    def mlx_lm_parameters(self) -> dict:
        params = {"rank": self.rank, "scale": self.alpha / self.rank, "dropout": self.dropout}
        return params | ({"keys": self.keys} if self.keys else {})


@dataclass
class GRPOConfig:
    model: str = "r1-nano"
    suite: str = "arithmetic"  # a suite name or a JSONL file of {"prompt", "answer"} rows
    verifiers: dict[str, float] = field(default_factory=lambda: {"math": 1.0, "format": 0.2})
    accuracy_verifier: str = "math"  # which verifier's score >= 1 counts as correct
    out: str | None = None  # default runs/<name>
    name: str | None = None
    steps: int = 100
    group_size: int = 8  # G completions per prompt
    prompts_per_step: int = 2  # groups per optimizer update
    groups_per_micro_batch: int = 0  # gradient accumulation: groups per forward/backward; 0 = all at once
    iterations_per_batch: int = 1  # updates per generated batch (mu); >1 uses stored old log-probs
    max_tokens: int = 256  # max completion length
    temperature: float | None = None  # None: the model profile's
    top_p: float | None = None
    loss_type: str = "grpo"
    epsilon: float = 0.2  # clip: ratio in [1 - epsilon, 1 + epsilon_high]
    epsilon_high: float | None = None  # None: = epsilon (DAPO uses 0.28)
    beta: float = 0.04  # KL coefficient (k3 estimator against the base model)
    scale_rewards: bool | None = None  # divide advantages by the group std; None: off for dr_grpo
    learning_rate: float = 1e-4
    lr_schedule: str = "constant"  # constant | cosine | linear
    warmup_steps: int = 0
    max_grad_norm: float = 1.0
    grad_checkpoint: bool = False
    lora: LoraConfig = field(default_factory=LoraConfig)
    seed: int = 0
    checkpoint_every: int = 10
    eval_every: int = 0  # 0: no held-out evaluation during training
    eval_size: int = 32
    samples_per_step: int = 2  # completions written to samples.jsonl per step
    train_size: int = 2000  # examples drawn from a generated suite

    @classmethod
    def from_dict(cls, d: dict) -> "GRPOConfig":
        return _from_dict(cls, d)

    def to_dict(self) -> dict:
        return asdict(self)

    def check(self) -> "GRPOConfig":
        if self.loss_type not in LOSS_TYPES:
            raise UserError(f"loss_type {self.loss_type!r}: choose one of {', '.join(LOSS_TYPES)}")
        if self.group_size < 2:
            raise UserError("group_size must be at least 2 (advantages are relative to the group)")
        if not self.verifiers:
            raise UserError("no verifiers: give at least one, e.g. --verifiers math,format")
        return self

    @property
    def clip_high(self) -> float:
        if self.epsilon_high is not None:
            return self.epsilon_high
        return 0.28 if self.loss_type == "dapo" else self.epsilon

    @property
    def std_scaling(self) -> bool:
        return self.scale_rewards if self.scale_rewards is not None else self.loss_type != "dr_grpo"


@dataclass
class SFTConfig:
    model: str = "r1-nano"
    data: str = ""  # JSONL chats
    out: str | None = None
    name: str | None = None
    steps: int = 100
    batch_size: int = 8
    learning_rate: float = 1e-4
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    max_grad_norm: float = 1.0
    max_length: int = 2048
    grad_checkpoint: bool = False
    lora: LoraConfig = field(default_factory=LoraConfig)
    seed: int = 0

    @classmethod
    def from_dict(cls, d: dict) -> "SFTConfig":
        return _from_dict(cls, d)

    def to_dict(self) -> dict:
        return asdict(self)


def _from_dict(cls, d: dict):
    names = {f.name: f for f in fields(cls)}
    unknown = sorted(set(d) - set(names))
    if unknown:
        raise UserError(f"unknown {cls.__name__} setting(s): {', '.join(unknown)}")
    values = dict(d)
    if isinstance(values.get("lora"), dict):
        values["lora"] = _from_dict(LoraConfig, values["lora"])
    if isinstance(values.get("verifiers"), (list, str)):
        values["verifiers"] = parse_verifiers(values["verifiers"])
    return cls(**values)


def parse_verifiers(spec) -> dict[str, float]:
    """"math,format" or "math:1,format:0.2" or a list of those -> {name: weight}."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out = {}
    for item in (i.strip() for i in items):
        if not item:
            continue
        name, _, weight = item.partition(":")
        try:
            out[name.strip()] = float(weight) if weight else 1.0
        except ValueError:
            raise UserError(f"verifier weight {item!r}: not a number") from None
    return out


def read_toml(path: str | Path) -> dict:
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read ({e})") from None
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{path}: not valid TOML ({e})") from None
