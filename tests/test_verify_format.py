"""The format verifier: one closed, non-empty think block, then an answer; partial credit."""

from __future__ import annotations

import pytest

from workbench.verify import get_verifier

# (completion, think_in_prompt, strict score, partial score)
CASES = [
    ("<think>\nwork\n</think>\nThe answer is 4.", None, 1.0, 1.0),
    ("work\n</think>\nThe answer is 4.", None, 1.0, 1.0),  # the prompt ended with <think>
    ("work\n</think>\nThe answer is 4.", True, 1.0, 1.0),
    ("work\n</think>\nThe answer is 4.", False, 0.0, 0.75),  # the completion had to open it
    ("<think>\nwork\n</think>\nThe answer is 4.", True, 0.0, 0.75),  # a second opening tag
    ("<think>\nwork\n</think>\nThe answer is 4.", False, 1.0, 1.0),
    ("<think>\nwork, never closed", None, 0.0, 0.25),
    ("<think></think>The answer is 4.", None, 0.0, 0.75),  # empty thinking
    ("<think>  \n </think>The answer is 4.", None, 0.0, 0.75),
    ("<think>work</think>", None, 0.0, 0.75),  # no answer
    ("<think>work</think>   \n", None, 0.0, 0.75),
    ("<think>a</think>b</think>c", None, 0.0, 0.75),  # two closing tags
    ("<think>a<think>b</think>c", None, 0.0, 0.75),  # two opening tags
    ("preamble <think>a</think>b", False, 0.0, 0.75),  # text before the block
    ("The answer is 4.", None, 0.0, 0.25),  # no block at all (only the prompt's opening counts)
    ("The answer is 4.", False, 0.0, 0.0),
    ("", None, 0.0, 0.25),
    ("</think>answer", True, 0.0, 0.75),
]


@pytest.mark.parametrize("completion, in_prompt, strict, partial", CASES)
def test_format(completion, in_prompt, strict, partial):
    example = {} if in_prompt is None else {"think_in_prompt": in_prompt}
    verdict = get_verifier("format")(completion, example)
    assert verdict.score == strict, verdict
    assert verdict.reason
    assert get_verifier("format_partial")(completion, example).score == partial
