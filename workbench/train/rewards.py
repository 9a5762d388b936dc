"""Rewards: a weighted sum of named verifiers, each run exactly once per completion.

Model output is untrusted, so verifiers run in the verifier pool's worker processes (a hard
timeout per call); a verdict of None ("cannot judge") scores 0.
"""

from __future__ import annotations

from typing import Callable

Scorer = Callable[[str, list[tuple[str, dict]]], list[float]]  # (verifier name, items) -> scores


def pool_scorer(pool) -> Scorer:
    def score(name: str, items: list[tuple[str, dict]]) -> list[float]:
        return [v.score or 0.0 for v in pool.map(name, items)]
    return score


def score_completions(completions: list[str], examples: list[dict], weights: dict[str, float],
                      scorer: Scorer) -> tuple[list[float], dict[str, list[float]]]:
    """(total reward per completion, {verifier: scores})."""
    items = list(zip(completions, examples))
    per_verifier = {name: [float(s) for s in scorer(name, items)] for name in weights}
    totals = [sum(weights[name] * per_verifier[name][i] for name in weights) for i in range(len(items))]
    return totals, per_verifier
