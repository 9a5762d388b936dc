"""The math verifier (math/2) and the one answer extractor: extraction, policies, reward hacking."""

from __future__ import annotations

import pytest

from workbench.verify import Verdict, get_verifier
from workbench.verify.answer import boxed_contents, extract_answer, final_answer, split_thinking
from workbench.verify.registry import verifier_version

verify = get_verifier("math")


@pytest.mark.parametrize("text, opened, expected", [
    ("a</think>b", False, ("a", "b", True)),
    ("<think>a</think>b", False, ("a", "b", True)),
    ("a</think>b</think>c", False, ("a</think>b", "c", True)),  # the LAST close
    ("<think>a", False, ("a", "", False)),  # opened in the text, never closed
    ("a", True, ("a", "", False)),  # opened by the prompt, never closed
    ("a", False, ("", "a", True)),  # no think block at all: all answer
    ("", False, ("", "", True)),
])
def test_split_thinking(text, opened, expected):
    assert split_thinking(text, opened) == expected


# (answer text, extracted text or None, rule starts with)
EXTRACTION = [
    ("so \\boxed{42}", "42", "boxed"),
    ("\\boxed{1} then \\boxed{2}", "2", "boxed"),
    ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}", "boxed"),
    ("\\boxed{\\{1, \\{2\\}\\}}", "\\{1, \\{2\\}\\}", "boxed"),
    ("\\boxed{a{b}c}", "a{b}c", "boxed"),
    ("\\boxed{\\boxed{7}}", "\\boxed{7}", "boxed"),
    ("\\fbox{7}", "7", "boxed"),
    ("\\boxed 5 is it", "5", "boxed"),
    ("The final answer is 17.", "17", "answer phrase"),
    ("The final answer is: $\\frac{3}{4}$ indeed", "\\frac{3}{4}", "answer phrase"),
    ("Final Answer: 12", "12", "answer phrase"),
    ("**Final Answer**\n\n$x = 2$", "x = 2", "answer phrase"),
    ("The answer is Evelyn.", "Evelyn", "answer phrase"),
    ("the answer is \\boxed{9}", "9", "boxed"),
    ("Total: 1,234 items", "1,234", "sole expression"),
    ("x = -2.5", "x = -2.5", "sole expression"),
    ("$\\dfrac{1}{3}$", "\\dfrac{1}{3}", "sole expression"),
    ("The probability is $\\dfrac{1}{3}$.", "\\dfrac{1}{3}", "sole expression"),
    ("She has 18 dollars left.", "18", "sole expression"),
    ("We get 3 apples then 5 pears, total 8", None, "several candidate answers"),  # never the last number
    ("41 or 42", None, "several candidate answers"),
    ("AZYUK2A", None, "no final answer"),
    ("no digits here", None, "no final answer"),
    ("", None, "no final answer"),
    ("\\boxed{unclosed 3", None, "a \\boxed{ is never closed"),
    ("\\boxed{5} and a cut-off \\boxed{12", None, "a \\boxed{ is never closed"),
    ("\\boxed{}", None, "empty"),
    ("The answer is", None, "nothing after"),
]


@pytest.mark.parametrize("text, expected, rule", EXTRACTION)
def test_extract_answer(text, expected, rule):
    found = extract_answer(text)
    assert found.text == expected and found.rule.startswith(rule), found


def test_final_answer_reads_after_the_last_close_only():
    assert final_answer("thinking 99</think>answer: none").text == "none"
    assert final_answer("thinking \\boxed{3}</think>The final answer is 4").text == "4"
    assert final_answer("so it is 42", opened=True).text is None
    assert final_answer("so it is 42").text == "42"


def test_boxes_are_found_in_one_linear_pass_over_hostile_text():
    # each unclosed box would cost a scan to the end if searched one by one: 10^10 steps here
    found, cut_off = boxed_contents("\\boxed{" * 100_000)
    assert found == [] and cut_off
    found, cut_off = boxed_contents("\\boxed{1}" * 50_000)
    assert len(found) == 50_000 and not cut_off
    # unclosed math spans and many answer phrases: each bounded, none rescans the rest of the text
    assert extract_answer("\\(" * 100_000 + "1").text == "1"
    assert extract_answer("$$" + "a" * 200_000).rule == "no final answer found"
    assert extract_answer("The answer is: " * 50_000 + "7").text == "7"
    assert extract_answer(" ".join(map(str, range(50_000)))).rule.startswith("several candidate answers")


# A policy hunting for reward writes these; each must score 0 against its gold answer.
REWARD_HACKS = [
    ("2", "AZYUK2A"),  # the old last-number fallback
    ("(0,9)", "$[0,9)$"),
    ("2", "$\\frac{1+\\sqrt{5}}{2}$"),  # its last number is 2
    ("2", "\\boxed{1,2}"),  # a list for a single value
    ("42", "\\boxed{41} or \\boxed{42}"),  # boxes that disagree
    ("42", "\\boxed{42} \\boxed{41}"),
    ("42", "41 or 42"), ("42", "$41$ or $42$"), ("42", "The answer is 41 or 42."),
    ("42", "\\boxed{41 \\text{ or } 42}"), ("4142", "\\boxed{41 \\text{ or } 42}"), ("42", "\\boxed{41, 42}"),
    ("2", "\\boxed{2 \\lor 3}"), ("2", "\\boxed{\\pm 2}"),
    ("7", "0 1 2 3 4 5 6 7 8 9"),  # every candidate
    ("7", "\\boxed{0, 1, 2, \\ldots, 100}"), ("7", "\\boxed{\\{1, 2, 3, 4, 5, 6, 7, 8, 9\\}}"),
    ("5", "Answer: 2, 3, 5, 7"), ("C", "\\boxed{A, B, C, D}"), ("C", "ABCD"),
    ("2", "\\boxed{[1,3]}"), ("2", "\\boxed{(1,3)}"), ("7", "\\boxed{1 \\leq x \\leq 100}"),  # intervals for a point
    ("5", "\\boxed{x \\geq 0}"), ("5", "\\boxed{\\mathbb{R}}"), ("5", "\\boxed{\\infty}"),
    ("2", "\\boxed{}"), ("2", "\\boxed{ }"), ("5", "\\boxed{5"), ("5", "\\boxed{5} \\boxed{"),  # empty, cut off
    ("4, 5", "\\boxed{4} \\boxed{5} \\boxed{"), ("4, 5", "\\boxed{4} \\boxed{5} \\boxed{}"),
    ("2", "\\boxed{x}"), ("2", "\\boxed{2x}"), ("2", "\\boxed{\\frac{2}{0}}"),
    ("2", "\\boxed{2.0001}"), ("100000", "\\boxed{100001.0}"), ("1000", "\\boxed{1000.01}"),
    ("0.0000001", "\\boxed{0.0000002}"),  # Math-Verify rounds both to 6 places
    ("\\text{Evelyn}", "\\boxed{nEvely}"), ("\\text{Evelyn}", "\\boxed{\\text{Evelyn or Bob}}"),
    ("(1,2)", "\\boxed{\\{1,2\\}}"),
    ("42", "so it is \\boxed{42}</think>I don't know."),  # the thinking's answer does not count
    ("42", "\\boxed{42}</think>\\boxed{41}"),
    ("12", "\\boxed{12 13}"), ("42", "x" * 50 + "42" + "y" * 50),
]


@pytest.mark.parametrize("gold, completion", REWARD_HACKS)
def test_reward_hacks_score_zero(gold, completion):
    assert verify(completion, {"answer": gold}).score == 0.0


def test_thinking_never_closed_has_no_answer():
    assert verify("so it is 42", {"answer": "42", "think_in_prompt": True}) == Verdict(
        0.0, "thinking never closed: no answer")
    assert verify("<think>so it is 42", {"answer": "42"}).score == 0.0
    assert verify("so it is 42", {"answer": "42"}).score == 1.0  # no think block: all answer
    assert verify("hm</think>\\boxed{42}", {"answer": "42", "think_in_prompt": True}).score == 1.0


@pytest.mark.parametrize("example, score, reason", [
    ({}, None, "no answer"),
    ({"answer": ""}, None, "no answer"),
    ({"answer": 27.0}, 1.0, "matches"),  # AMC stores floats
    ({"answer": 27}, 1.0, "matches"),  # AIME 2025 stores ints
    ({"answer": "\\frac{"}, None, "cannot read the gold answer"),
])
def test_example_fields(example, score, reason):
    verdict = verify("\\boxed{27}", example)
    assert verdict.score == score and reason in verdict.reason


def test_tolerance_is_configurable():
    assert verify("\\boxed{2.6}", {"answer": "2.5"}).score == 0.0
    assert verify("\\boxed{2.6}", {"answer": "2.5", "tolerance": 0.1}).score == 1.0
    assert verify("\\boxed{0.3333}", {"answer": "1/3"}).score == 1.0  # rounded to its digits
    assert verify("\\boxed{0.3333}", {"answer": "1/3", "tolerance": 1e-6}).score == 0.0


def test_reasons_say_what_was_extracted_and_why():
    assert verify("\\boxed{025}", {"answer": "25"}) == Verdict(1.0, "matches the gold answer (number)", "025")
    wrong = verify("\\boxed{x^2}", {"answer": "x^3"})
    assert wrong == Verdict(0.0, "expected x^3 (math-verify)", "x^2")
    assert "several candidate answers (3, 18)" in verify("After 3 days she has 18 dollars.", {"answer": "18"}).reason
    assert verify("I give up.", {"answer": "5"}) == Verdict(0.0, "no final answer found")
    long = verify("\\boxed{" + "1+" * 5000 + "1}", {"answer": "5001"})
    assert long.score == 0.0 and "longer than" in long.reason


def test_explain_gives_the_parsed_forms_and_the_deciding_rule():
    plain = verify("\\boxed{\\frac{1}{2}}", {"answer": "0.5"})
    assert plain.details is None  # only when asked
    v = verify("work</think>So $k = \\dfrac{2}{4}$.", {"answer": "\\frac{1}{2}", "explain": True})
    assert v.score == 1.0
    assert v.details == {"extracted": "k = \\dfrac{2}{4}", "extraction": "sole expression",
                         "gold_parsed": "1/2", "answer_parsed": "1/2", "decided_by": "number"}
    v = verify("\\boxed{x \\geq 5}", {"answer": "5 \\leq x", "explain": True})
    assert v.score == 1.0 and v.details["decided_by"] == "math-verify"
    assert v.details["gold_parsed"] == "5 <= x" and v.details["answer_parsed"] == "x >= 5"
    v = verify("\\boxed{1} and \\boxed{2}", {"answer": "2", "explain": True})
    assert v.score == 0.0 and "as one set" in v.details["decided_by"] and v.details["answer_parsed"] == "{1, 2}"


def test_version_is_math_2():
    assert verifier_version("math") == "math/2"
