"""Published scores to hold measurements against.

A model profile's `claims` (suite name -> percent) come first. For the six R1 distills, the
DeepSeek-R1 README's evaluation table (pass@1, temperature 0.6, top-p 0.95, 32,768 tokens)
is built in here, matched on the model folder's name.
"""

from __future__ import annotations

# Name fragment (lower case) -> {suite: percent}. Longer fragments first: "qwen-14b" before "qwen-1".
R1_README: list[tuple[str, dict[str, float]]] = [
    ("distill-qwen-1.5b", {"aime24": 28.9, "math500": 83.9}),
    ("distill-qwen-7b", {"aime24": 55.5, "math500": 92.8}),
    ("distill-qwen-14b", {"aime24": 69.7, "math500": 93.9}),
    ("distill-qwen-32b", {"aime24": 72.6, "math500": 94.3}),
    ("distill-llama-8b", {"aime24": 50.4, "math500": 89.1}),
    ("distill-llama-70b", {"aime24": 70.0, "math500": 94.5}),
]


def claimed_score(model_name: str, profile_claims: dict | None, suite: str) -> tuple[float, str] | None:
    """(percent, where it comes from) or None."""
    claims = profile_claims or {}
    if suite in claims:
        try:
            return float(claims[suite]), "model profile"
        except (TypeError, ValueError):
            return None
    lowered = model_name.lower()
    for fragment, scores in R1_README:
        if fragment in lowered and suite in scores:
            return scores[suite], "DeepSeek-R1 README"
    return None
