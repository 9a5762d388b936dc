"""The math verifier: extraction and equivalence, table-driven (gold, prediction, expected)."""

from __future__ import annotations

import pytest

from workbench.verify import Verdict, get_verifier
from workbench.verify.math_answer import extract_answer, last_boxed

# (gold, predicted final answer, same?). The prediction is put into \boxed{} by the test.
EQUIVALENCE = [
    # integers, leading zeros, signs, separators
    ("25", "25", True), ("25", "025", True), ("025", "25", True), ("7", "007", True), ("0", "000", True),
    ("42", "43", False), ("-3", "-3", True), ("-3", "3", False), ("+5", "5", True), ("1000", "1,000", True),
    ("1000000", "1,000,000", True), ("1,234", "1234", True), ("1234", "12,34", False), ("12", "12.0", True),
    ("12", "12.00", True), ("100", "10", False), ("36", "6^2", True), ("8", "2^3", True), ("9", "3*3", True),
    ("10", "5+5", True), ("0", "-0", True), ("70", "70", True), ("588", "588", True), ("204", "024", False),
    # fractions
    ("\\frac{1}{2}", "0.5", True), ("\\frac{1}{2}", "1/2", True), ("\\frac12", "\\frac{1}{2}", True),
    ("\\dfrac{3}{4}", "0.75", True), ("\\tfrac{3}{4}", "\\frac34", True), ("\\frac{2}{4}", "\\frac{1}{2}", True),
    ("\\frac{1}{3}", "0.333", False), ("\\frac{1}{3}", "0.3333333", True), ("\\frac{1}{3}", "1/3", True),
    ("-\\frac{1}{2}", "-0.5", True), ("-\\frac{1}{2}", "\\frac{-1}{2}", True), ("\\frac{5}{2}", "2.5", True),
    ("\\frac{5}{2}", "2\\frac{1}{2}", True), ("\\frac{7}{3}", "\\frac{3}{7}", False), ("\\frac{1}{4}", "0.25", True),
    ("3/8", "0.375", True), ("\\frac{9}{4}", "\\frac{18}{8}", True), ("\\frac{14}{3}", "4.67", False),
    ("\\frac{1}{2}", "\\frac{1}{3}", False), ("2", "\\frac{4}{2}", True), ("\\frac{a}{b}", "a/b", True),
    # decimals within tolerance
    ("3.14159", "3.14159", True), ("0.1", "0.10", True), ("0.1", ".1", True), ("2.5", "2.50001", True),
    ("2.5", "2.6", False), ("1000", "1000.01", True), ("1000", "1001", False), ("0.001", "0.0011", False),
    ("12.5", "12.5", True), ("18.75", "18.7", False), ("1.5", "\\frac{3}{2}", True), ("0.2", "\\frac{1}{5}", True),
    # radicals, pi, powers
    ("2\\sqrt{2}", "\\sqrt{8}", True), ("\\sqrt{2}", "2^{1/2}", True), ("\\sqrt{2}", "1.41421356", True),
    ("\\sqrt{3}", "\\sqrt{2}", False), ("\\frac{\\sqrt{3}}{2}", "\\frac{1}{2}\\sqrt{3}", True),
    ("3\\sqrt{3}", "\\sqrt{27}", True), ("\\pi", "\\pi", True), ("2\\pi", "2 \\pi", True), ("\\pi", "3.14159265", True),
    ("\\pi", "3.14", False), ("\\frac{\\pi}{2}", "\\frac{1}{2}\\pi", True), ("4\\pi", "\\pi", False),
    ("\\pi r^2", "r^2\\pi", True), ("2^{10}", "1024", True), ("10^3", "1000", True), ("e^{2}", "e^2", True),
    ("\\sqrt{50}", "5\\sqrt{2}", True), ("\\frac{1}{\\sqrt{2}}", "\\frac{\\sqrt{2}}{2}", True),
    ("6\\sqrt{6}", "6\\sqrt{5}", False), ("1+\\sqrt{5}", "\\sqrt{5}+1", True), ("\\sqrt[3]{8}", "2", True),
    # expressions
    ("x^2+1", "1+x^2", True), ("2x+3", "3+2x", True), ("(x+1)^2", "x^2+2x+1", True), ("x^2-1", "(x-1)(x+1)", True),
    ("x+1", "x-1", False), ("2x", "2y", False), ("3a+2b", "2b+3a", True), ("\\frac{x}{2}", "0.5x", True),
    ("x^2", "x^3", False), ("a^2+b^2", "b^2+a^2", True), ("y=2x+3", "y = 3 + 2x", True), ("x=5", "5", True),
    ("-2x+1", "1-2x", True),
    # intervals
    ("(1,2]", "(1, 2]", True), ("[1,2)", "(1,2)", False), ("[0,\\infty)", "[0, \\infty)", True),
    ("(-\\infty, 3)", "(-\\infty,3)", True), ("[2,5]", "[2,6]", False), ("(-1,1)", "(-1, 1)", True),
    ("(-\\infty,0)\\cup(0,\\infty)", "(-\\infty,0) \\cup (0,\\infty)", True), ("[1,2]", "(1,2]", False),
    # sets and tuples
    ("\\{1,2\\}", "\\{2,1\\}", True), ("\\{1,2,3\\}", "\\{1,2\\}", False), ("(3,4)", "(3, 4)", True),
    ("(1,2)", "(2,1)", False), ("(3,\\frac{\\pi}{2})", "(3, \\frac{\\pi}{2})", True), ("(0,0)", "(0,1)", False),
    ("(1,2,3)", "(1, 2, 3)", True), ("1,2", "2,1", True), ("2, 3", "2,3", True), ("-2, 5", "5, -2", True),
    ("1,2,3", "1,2", False),
    # percentages and units
    ("25", "25\\%", True), ("25\\%", "25", True), ("25", "25%", True), ("12.5", "12.5\\%", True),
    ("10", "10\\text{ cm}", True), ("18", "18 dollars", True), ("18", "\\$18", True), ("18", "\\$18.00", True),
    ("90", "90^\\circ", True), ("90", "90^{\\circ}", True), ("45", "45°", True), ("5", "5\\text{ meters}", True),
    ("30", "30 \\mbox{ minutes}", True), ("20", "20\\text{ square units}", True), ("7", "7 units", True),
    ("12", "12 inches", True), ("12", "13 inches", False), ("50", "50\\%", True), ("2", "2\\,\\text{km}", True),
    ("600", "600\\text{ mph}", True), ("3", "3 \\text{ hours}", True),
    # multiple choice and text
    ("\\text{(C)}", "C", True), ("\\text{(C)}", "(C)", True), ("C", "\\text{C}", True), ("(A)", "A", True),
    ("\\text{(C)}", "D", False), ("\\text{Evelyn}", "\\text{Evelyn}", True), ("B", "C", False),
    ("\\text{even}", "even", True), ("\\text{odd}", "even", False),
    # LaTeX noise
    ("5", "\\left(5\\right)", True), ("\\frac{1}{2}", "\\left(\\frac{1}{2}\\right)", True), ("5", "5.", True),
    ("5", "\\displaystyle 5", True), ("\\frac{1}{2}", "\\dfrac{1}{2}", True), ("10", "{10}", True),
    ("\\$5", "5", True), ("1.5", "1\\!.\\!5", True),
    # trig, logs and friends
    ("\\frac{\\sqrt{2}}{2}", "\\sin(\\pi/4)", True), ("0", "\\cos(\\pi/2)", True), ("1", "\\log_2 2", True),
    ("2", "\\log_{10} 100", True), ("3", "\\ln(e^3)", True), ("120", "5!", True), ("10", "\\binom{5}{2}", True),
    ("6", "\\binom{4}{2}", True), ("4", "|-4|", True), ("-1", "(-1)^3", True),
    # complex numbers and matrices
    ("1+i", "i+1", True), ("2-3i", "2+3i", False), ("3i", "3i", True),
    ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}", True),
    ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix}2\\\\1\\end{pmatrix}", False),
    # AIME/AMC shapes
    ("204", "204", True), ("073", "73", True), ("113", "311", False), ("27", "27.0", True), ("1.5", "3/2", True),
    ("968", "0968", True), ("55", "5.5", False),
]


@pytest.mark.parametrize("gold, pred, same", EQUIVALENCE)
def test_equivalence(gold, pred, same):
    verdict = get_verifier("math")(f"Some work.</think>The answer is \\boxed{{{pred}}}.", {"answer": gold})
    assert verdict.score == (1.0 if same else 0.0), (gold, pred, verdict)
    assert verdict.extracted == pred


def test_table_has_at_least_150_cases():
    assert len(EQUIVALENCE) >= 150


# (completion, extraction order or None for the default, extracted answer)
EXTRACTION = [
    ("so \\boxed{42}", None, "42"),
    ("\\boxed{1} then \\boxed{2}", None, "2"),
    ("\\boxed{\\frac{1}{2}}", None, "\\frac{1}{2}"),
    ("\\boxed{\\{1, \\{2\\}\\}}", None, "\\{1, \\{2\\}\\}"),
    ("\\fbox{7}", None, "7"),
    ("\\boxed 5 is it", None, "5"),
    ("The final answer is 17.", None, "17"),
    ("The final answer is: $\\frac{3}{4}$ indeed", None, "\\frac{3}{4}"),
    ("Final Answer: 12", None, "12"),
    ("the answer is \\boxed{9}", None, "9"),
    ("We get 3 apples then 5 pears, total 8", None, "8"),
    ("Total: 1,234 items", None, "1,234"),
    ("x = -2.5", None, "-2.5"),
    ("no digits here", None, None),
    ("", None, None),
    ("\\boxed{unclosed", None, None),  # cut off mid-answer; no final phrase, no number
    ("\\boxed{unclosed 3", None, "3"),  # ... but a number is there
    ("thinking 99</think>answer: none", None, None),  # the thinking's numbers do not count
    ("thinking \\boxed{3}</think>The final answer is 4", None, "4"),
    ("The final answer is 4\nand \\boxed{5}", ("final", "boxed"), "4"),
    ("The final answer is 4 and \\boxed{5}", ("last_number",), "5"),
    ("\\boxed{5} then 6", ("last_number",), "6"),
]


@pytest.mark.parametrize("completion, order, expected", EXTRACTION)
def test_extraction(completion, order, expected):
    assert (extract_answer(completion, order) if order else extract_answer(completion)) == expected


def test_last_boxed_handles_nesting_and_spacing():
    assert last_boxed("\\boxed{a{b}c}") == "a{b}c"
    assert last_boxed("nothing") is None


@pytest.mark.parametrize("example, score, reason", [
    ({}, None, "no answer"),
    ({"answer": ""}, None, "no answer"),
    ({"answer": 27.0}, 1.0, "matches"),  # AMC stores floats
    ({"answer": 27}, 1.0, "matches"),  # AIME 2025 stores ints
    ({"answer": "27", "extract": ["nonsense"]}, None, "unknown extractor"),
])
def test_example_fields(example, score, reason):
    verdict = get_verifier("math")("\\boxed{27}", example)
    assert verdict.score == score and reason in verdict.reason


def test_tolerance_is_configurable():
    verify = get_verifier("math")
    assert verify("\\boxed{2.6}", {"answer": "2.5"}).score == 0.0
    assert verify("\\boxed{2.6}", {"answer": "2.5", "tolerance": 0.1}).score == 1.0


def test_no_answer_and_overlong_answers_score_zero():
    verify = get_verifier("math")
    assert verify("I give up.", {"answer": "5"}) == Verdict(0.0, "no final answer found")
    long = verify("\\boxed{" + "1+" * 5000 + "1}", {"answer": "5001"})
    assert long.score == 0.0 and "longer than" in long.reason


def test_unparseable_gold_cannot_be_judged():
    verdict = get_verifier("math")("\\boxed{5}", {"answer": "\\frac{"})
    assert verdict.score in (None, 0.0)


def test_unclosed_thinking_has_no_answer_when_the_prompt_opened_it():
    verify = get_verifier("math")
    assert verify("so it is 42", {"answer": "42", "think_in_prompt": True}).score == 0.0
    assert verify("so it is 42", {"answer": "42"}).score == 1.0
    assert verify("hm</think>\\boxed{42}", {"answer": "42", "think_in_prompt": True}).score == 1.0
