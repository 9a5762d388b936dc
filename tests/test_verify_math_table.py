"""The math verifier on 365 answers as models write them (tests/math_judge_cases.py), and where it
deliberately disagrees with bare Math-Verify on them (each argued in docs/verifiers.md)."""

from __future__ import annotations

import logging
from collections import Counter

import pytest
from math_judge_cases import CASES

from workbench.verify import get_verifier

CATEGORIES = sorted({c[0] for c in CASES})

# (gold, completion) where bare Math-Verify (parse the gold as $gold$, parse the whole completion,
# verify) differs from the careful grader's verdict in the table; docs/verifiers.md argues each.
DISAGREEMENTS = {
    ("5", r"\fbox{5}"), ("5", r"\boxed{5.}"), ("18", r"\boxed{18 dollars}"), ("45", r"\boxed{45°}"),
    ("12.5", r"\boxed{12.5\%}"), ("\\pi", r"\boxed{3.1416}"),
    ("(0,9)", r"$0<x<9$"), ("(0,9)", r"\boxed{0 < x < 9}"), ("[-2,7]", r"\boxed{-2 \leq x \leq 7}"),
    ("(3,\\infty)", r"\boxed{x > 3}"), ("(1,2)", r"\boxed{\{1,2\}}"),
    ("\\text{E}", "E"), ("\\text{Evelyn}", "The answer is Evelyn."), ("\\text{Devon}", "**Answer:** Devon"),
    ("\\text{(D)}", "The answer is (D)."),
    ("1/3", r"\boxed{0.3333}"), ("2/3", r"\boxed{0.6667}"), ("2/3", r"\boxed{0.6666}"), ("0.3333", r"\boxed{\frac{1}{3}}"),
    ("0.0000001", r"\boxed{0.0000002}"), ("3.5", r"\boxed{3,5}"), ("2.25", r"\boxed{2,25}"), ("7.5", r"\boxed{7,5}"),
    ("42", "41 or 42"), ("18", "After 3 days she has 18 dollars."), ("5", "\\boxed{5} \\boxed{"),
    ("42", "so it is \\boxed{42}</think>I don't know."), ("42", "<think>so it is 42"),
    ("42", "\\boxed{41}</think>\\boxed{42}"), ("42", "thinking 42</think>answer: none"),
}


def test_the_table_has_300_cases_in_every_category():
    assert len(CASES) >= 300
    counts = Counter(c[0] for c in CASES)
    expected = {"numbers", "fractions", "roots", "units", "relations", "equations", "expressions", "matrices",
                "intervals", "sets", "tuples", "text", "decimals", "multiple", "garbage", "thinking"}
    assert set(counts) == expected and min(counts.values()) >= 10, counts
    assert len({(str(g), c) for _, g, c, _ in CASES}) == len(CASES)  # no duplicates


@pytest.mark.parametrize("category", CATEGORIES)
def test_verdicts(category):
    verify = get_verifier("math")
    wrong = []
    for _, gold, completion, score in (c for c in CASES if c[0] == category):
        verdict = verify(completion, {"answer": gold})
        if verdict.score != score:
            wrong.append((gold, completion, score, verdict))
    assert not wrong, wrong


@pytest.mark.slow
def test_disagreements_with_bare_math_verify_are_the_documented_ones():
    import math_verify

    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    bare = {(str(gold), completion): int(math_verify.verify(math_verify.parse(f"${gold}$"), math_verify.parse(completion)))
            for _, gold, completion, _ in CASES}
    differ = {key for _, gold, completion, score in CASES if bare[(key := (str(gold), completion))] != score}
    assert differ == DISAGREEMENTS
