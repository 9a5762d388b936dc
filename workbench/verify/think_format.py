"""The format verifier: one think block, closed, non-empty, followed by a non-empty answer.

Prompts built with force_think already end with "<think>\\n", so a completion may lack the
opening tag. The example's `think_in_prompt` says which: True (the prompt opened it: the
completion must not open another), False (the completion must open it), absent (either).
`verify_partial` (registered as "format_partial") gives open-r1 style partial credit:
0.25 for each of one opening tag, one closing tag, non-empty thinking, non-empty answer.
"""

from __future__ import annotations

from workbench.verify.registry import Verdict

VERSION = "1"
OPEN, CLOSE = "<think>", "</think>"


def check(completion: str, example: dict) -> list[tuple[bool, str]]:
    """The four requirements as (met, reason-if-not), in order."""
    in_prompt = example.get("think_in_prompt")
    opens = completion.count(OPEN)
    closes = completion.count(CLOSE)
    if in_prompt is None:
        in_prompt = not completion.lstrip().startswith(OPEN)
    total_opens = opens + (1 if in_prompt else 0)
    head, _, answer = completion.partition(CLOSE)
    thinking = head.split(OPEN, 1)[1] if (OPEN in head and not in_prompt) else head.replace(OPEN, "")
    opened_first = in_prompt or completion.lstrip().startswith(OPEN)
    return [
        (total_opens == 1 and opened_first, f"{total_opens} opening <think> tags" if total_opens != 1
         else "text before <think>"),
        (closes == 1, f"{closes} closing </think> tags"),
        (closes >= 1 and bool(thinking.strip()), "empty thinking"),
        (closes >= 1 and bool(answer.replace(OPEN, "").replace(CLOSE, "").strip()), "no answer after </think>"),
    ]


def verify(completion: str, example: dict) -> Verdict:
    for met, reason in check(completion, example):
        if not met:
            return Verdict(0.0, reason)
    return Verdict(1.0, "one closed, non-empty think block and an answer")


def verify_partial(completion: str, example: dict) -> Verdict:
    results = check(completion, example)
    score = sum(0.25 for met, _ in results if met)
    missing = [reason for met, reason in results if not met]
    return Verdict(score, "; ".join(missing) if missing else "one closed, non-empty think block and an answer")
