"""Countdown (TinyZero) and language-consistency verifiers."""

from __future__ import annotations

import pytest

from workbench.verify import get_verifier
from workbench.verify.countdown import BadExpression, evaluate

EXAMPLE = {"numbers": [25, 5, 2, 7], "target": 47}

# (completion, score, reason fragment)
COUNTDOWN = [
    ("<answer>(25 - 5) * 2 + 7</answer>", 1.0, "reaches 47"),
    ("<think>try</think><answer>7 + 2 * (25 - 5) = 47</answer>", 1.0, "reaches 47"),
    ("\\boxed{(25-5) \\times 2 + 7}", 1.0, "reaches 47"),
    ("So the answer: 7 + 2 × (25 − 5)".replace("−", "-"), 1.0, "reaches 47"),
    ("<answer>25 * 2 - 5 + 7</answer>", 0.0, "equals 52"),
    ("<answer>25 + 5 + 2 + 7 + 7</answer>", 0.0, "beyond the given numbers"),
    ("<answer>25 + 22</answer>", 0.0, "beyond"),
    ("<answer>25 * 2 - 5 + 2</answer>", 0.0, "beyond"),
    ("<answer>(25 - 5) * 2</answer>", 0.0, "does not use [7]"),
    ("<answer>__import__('os').system('true')</answer>", 0.0, "not allowed"),
    ("<answer>25 ** 5</answer>", 0.0, "not allowed"),
    ("<answer>(25 - 5) / (2 - 2) + 7</answer>", 0.0, "division by zero"),
    ("<answer>7 / (5 - 5)</answer>", 0.0, "division by zero"),
    ("<answer>" + "(" * 500 + "1" + ")" * 500 + "</answer>", 0.0, "longer than"),
    ("<answer>25 5 2 7</answer>", 0.0, "not an arithmetic expression"),
    ("no idea", 0.0, "no expression"),
    ("<answer>2.5 * 2</answer>", 0.0, "not allowed"),
]


@pytest.mark.parametrize("completion, score, reason", COUNTDOWN)
def test_countdown(completion, score, reason):
    verdict = get_verifier("countdown")(completion, EXAMPLE)
    assert verdict.score == score and reason in verdict.reason, verdict


def test_countdown_options_and_bad_examples():
    verify = get_verifier("countdown")
    assert verify("<answer>25 * 2 - 5 + 2</answer>", {**EXAMPLE, "target": 47, "numbers": [25, 2, 5, 2]}).score == 1.0
    assert verify("<answer>(25 - 5) * 2</answer>", {**EXAMPLE, "target": 40, "use_all": False}).score == 1.0
    assert verify("<answer>7 / (5 - 5)</answer>", {"numbers": [7, 5, 5], "target": 1}).reason == "division by zero"
    assert verify("<answer>1</answer>", {"numbers": "1 2", "target": 3}).score is None
    assert verify("<answer>1</answer>", {"numbers": [1]}).score is None


def test_evaluate_is_exact():
    assert evaluate("(1 / 3) * 3") == (1, [1, 3, 3])
    assert evaluate("-(4 - 6)")[0] == 2
    with pytest.raises(BadExpression):
        evaluate("x + 1")


LANGUAGE = [
    ("<think>Let me add the numbers carefully.</think>42", {"prompt": "What is 12+30?"}, 1.0),
    ("Let me add the numbers. 我们先算个位然后再算十位吧 then tens.</think>42", {"prompt": "What is 12+30?"}, "mixed"),
    ("我们先算个位，然后算十位。</think>42", {"prompt": "12加30等于多少？"}, 1.0),
    ("First the ones digit.</think>42", {"prompt": "12加30等于多少？"}, 0.0),
    ("Angle θ and π are fine here.</think>x", {"prompt": "Find the angle."}, 1.0),
    ("Мы считаем.</think>42", {"script": "cyrillic"}, 1.0),
    ("12 + 30 = 42</think>42", {"prompt": "What is 12+30?"}, None),
    ("anything", {}, None),
]


@pytest.mark.parametrize("completion, example, expected", LANGUAGE)
def test_language(completion, example, expected):
    verdict = get_verifier("language")(completion, example)
    if expected == "mixed":
        assert 0.0 < verdict.score < 1.0 and "language mixing" in verdict.reason and "CJK" in verdict.reason
    else:
        assert verdict.score == expected, verdict
