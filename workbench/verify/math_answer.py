"""The math verifier: extract the final answer, compare it with the gold answer.

Extraction, in order (configurable with the example's `extract` list): the last `\\boxed{...}`,
then "final answer is ...", then the last number. Comparison: exact numbers first (integers with
leading zeros, fractions, decimals within a relative tolerance, thousands separators), then the
normalised strings, then Math-Verify (LaTeX -> sympy: \\frac, \\sqrt, \\pi, intervals, sets,
tuples, expressions), then a numeric check of a decimal against a symbolic gold answer.
With `think_in_prompt` (the prompt opened <think>), a completion that never closes its
thinking has no answer. No timeouts here: run untrusted input through `workbench.verify.pool` (the process gets killed).
"""

from __future__ import annotations

import logging
import re
from fractions import Fraction

from workbench.verify.registry import Verdict

VERSION = "1"
EXTRACT_ORDER = ("boxed", "final", "last_number")
REL_TOL = 1e-4  # decimals: |pred - gold| <= REL_TOL * max(1, |gold|); override with example["tolerance"]
MAX_ANSWER_CHARS = 1000  # longer "answers" are not answers (and are where sympy bombs hide)

# ---- extraction ---------------------------------------------------------------------------------


def last_boxed(text: str) -> str | None:
    """The content of the last \\boxed{...} (or \\fbox{...}, or `\\boxed 5`), braces matched."""
    starts = [(text.rfind(cmd), cmd) for cmd in ("\\boxed", "\\fbox")]
    start, cmd = max(starts)
    if start < 0:
        return None
    i = start + len(cmd)
    if i < len(text) and text[i] == "{":
        depth = 0
        for j in range(i, len(text)):
            if text[j] == "{":
                depth += 1
            elif text[j] == "}":
                depth -= 1
                if depth == 0:
                    return text[i + 1:j]
        return None  # unclosed: cut off mid-answer
    m = re.match(r"\s+([^\s$]+)", text[i:])
    return m.group(1) if m else None


FINAL_ANSWER = re.compile(r"(?:final answer|the answer)\s*(?:is|:|=)\s*:?\s*([^\n]+)", re.IGNORECASE)
NUMBER_IN_TEXT = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?|-?\.\d+")


def final_answer_phrase(text: str) -> str | None:
    matches = FINAL_ANSWER.findall(text)
    if not matches:
        return None
    answer = matches[-1].strip()
    boxed = last_boxed(answer)
    if boxed is not None:
        return boxed
    if answer.startswith("$") and answer.count("$") >= 2:
        return answer[1:answer.index("$", 1)]
    return answer.rstrip(". ")


def last_number(text: str) -> str | None:
    matches = NUMBER_IN_TEXT.findall(text)
    return matches[-1].rstrip(",") if matches else None


EXTRACTORS = {"boxed": last_boxed, "final": final_answer_phrase, "last_number": last_number}


def answer_part(completion: str) -> str:
    """After the last </think> when there is one: the thinking is scratch work, not the answer."""
    end = completion.rfind("</think>")
    return completion[end + len("</think>"):] if end >= 0 else completion


def extract_answer(completion: str, order=EXTRACT_ORDER) -> str | None:
    text = answer_part(completion)
    for name in order:
        found = EXTRACTORS[name](text)
        if found is not None and found.strip():
            return found.strip()
    return None


# ---- normalisation and exact numbers -------------------------------------------------------------

TEXT_COMMAND = re.compile(r"\\(?:text|textbf|mbox|mathrm|textrm|operatorname)\s*\{([^{}]*)\}")
UNIT_WORDS = re.compile(r"^([-+]?[\d.,/]+)\s+(?:[a-zA-Z]{2,}\.?\s*)+$")  # "18 dollars", "10 square cm"
VARIABLE_PREFIX = re.compile(r"^[a-zA-Z]\s*=\s*(?=[^=])")  # "x = 5" -> "5"


def normalize(s: str) -> str:
    s = str(s).strip()
    s = s.strip("$").strip()
    for old, new in (("\\left", ""), ("\\right", ""), ("\\!", ""), ("\\,", ""), ("\\;", ""), ("\\:", ""),
                     ("\\dfrac", "\\frac"), ("\\tfrac", "\\frac"), ("^\\circ", ""), ("^{\\circ}", ""),
                     ("°", ""), ("\\%", ""), ("%", ""), ("\\$", ""), ("\\displaystyle", ""), ("~", " ")):
        s = s.replace(old, new)
    without_text = TEXT_COMMAND.sub("", s).strip()
    s = without_text if without_text else TEXT_COMMAND.sub(r"\1", s).strip()  # units go; "\text{(C)}" stays
    s = UNIT_WORDS.sub(r"\1", s)
    s = VARIABLE_PREFIX.sub("", s)
    return s.strip().rstrip(".").strip()


THOUSANDS = re.compile(r"^[-+]?\d{1,3}(,\d{3})+(\.\d+)?$")
LATEX_FRACTION = re.compile(r"^([-+]?)\\frac\s*(?:\{\s*([-+]?\d+)\s*\}|(\d))\s*(?:\{\s*([-+]?\d+)\s*\}|(\d))$")


def exact_number(s: str) -> tuple[Fraction, bool] | None:
    """(value, is_decimal) for plain numbers, a/b and \\frac{a}{b}; None for anything else."""
    s = s.replace(" ", "")
    if THOUSANDS.match(s):
        s = s.replace(",", "")
    m = LATEX_FRACTION.match(s)
    if m:
        sign, num_a, num_b, den_a, den_b = m.groups()
        den = int(den_a or den_b)
        if den == 0:
            return None
        value = Fraction(int(num_a or num_b), den)
        return (-value if sign == "-" else value), False
    if not re.fullmatch(r"[-+]?(\d+(\.\d*)?|\.\d+)(/\d+)?", s) or len(s) > 100:
        return None
    try:
        return Fraction(s), "." in s
    except (ValueError, ZeroDivisionError):
        return None


def numbers_equal(a: Fraction, b: Fraction, approximate: bool, tol: float) -> bool:
    if not approximate:
        return a == b
    return abs(float(a) - float(b)) <= tol * max(1.0, abs(float(b)))


# ---- symbolic comparison --------------------------------------------------------------------------

_math_verify = None


def math_verify():
    """Math-Verify, imported on first use (it imports sympy and an ANTLR LaTeX parser: ~1 s)."""
    global _math_verify
    if _math_verify is None:
        for name in ("math_verify", "math_verify.parser", "math_verify.grader"):
            logging.getLogger(name).setLevel(logging.ERROR)  # we time out ourselves (the pool kills)
        import math_verify as mv

        _math_verify = mv
    return _math_verify


def symbolic_parse(s: str):
    mv = math_verify()
    configs = [mv.LatexExtractionConfig(boxed_match_priority=0), mv.ExprExtractionConfig()]
    return mv.parse(f"${s}$", extraction_config=configs, parsing_timeout=None)


def symbolically_equal(gold: str, pred: str) -> bool | None:
    """True/False from Math-Verify; None when the gold answer cannot be parsed."""
    gold_parsed = symbolic_parse(gold)
    if not gold_parsed:
        return None
    pred_parsed = symbolic_parse(pred)
    if not pred_parsed:
        return False
    return bool(math_verify().verify(gold_parsed, pred_parsed, timeout_seconds=None))


def decimal_matches_symbolic(gold: str, pred_value: Fraction, tol: float) -> bool:
    """A decimal answer to a symbolic gold value (3.1416 for \\pi): compare numerically."""
    parsed = symbolic_parse(gold)
    if not parsed:
        return False
    try:
        value = complex(parsed[0].evalf(30))
    except (TypeError, ValueError, AttributeError):
        return False
    return value.imag == 0 and abs(value.real - float(pred_value)) <= tol * max(1.0, abs(value.real))


def answers_equal(gold, pred: str, tol: float = REL_TOL) -> bool | None:
    """Is `pred` the same answer as `gold`? None: the gold answer cannot be judged."""
    gold_text, pred_text = normalize(str(gold)), normalize(pred)
    if not gold_text:
        return None
    if not pred_text:
        return False
    gold_number, pred_number = exact_number(gold_text), exact_number(pred_text)
    if gold_number and pred_number:
        return numbers_equal(pred_number[0], gold_number[0], gold_number[1] or pred_number[1], tol)
    if gold_text.replace(" ", "") == pred_text.replace(" ", ""):
        return True
    same = symbolically_equal(gold_text, pred_text)
    if same:
        return True
    if pred_number and pred_number[1] and not gold_number:
        return decimal_matches_symbolic(gold_text, pred_number[0], tol)
    return same


def gold_of(example: dict):
    gold = example.get("answer")
    if isinstance(gold, float) and gold.is_integer():
        gold = int(gold)  # AMC answers are stored as 27.0
    return gold


def verify(completion: str, example: dict) -> Verdict:
    gold = gold_of(example)
    if gold is None or str(gold).strip() == "":
        return Verdict(None, "example has no answer")
    order = tuple(example.get("extract") or EXTRACT_ORDER)
    unknown = [name for name in order if name not in EXTRACTORS]
    if unknown:
        return Verdict(None, f"unknown extractor {unknown[0]!r} (use {', '.join(EXTRACTORS)})")
    if example.get("think_in_prompt") and "</think>" not in completion:
        return Verdict(0.0, "thinking never closed: no answer")  # its numbers are scratch work
    pred = extract_answer(completion, order)
    if pred is None:
        return Verdict(0.0, "no final answer found")
    if len(pred) > MAX_ANSWER_CHARS:
        return Verdict(0.0, f"answer longer than {MAX_ANSWER_CHARS} characters", pred[:80] + "…")
    same = answers_equal(gold, pred, float(example.get("tolerance", REL_TOL)))
    if same is None:
        return Verdict(None, f"cannot read the gold answer {str(gold)[:60]!r}", pred)
    return Verdict(1.0 if same else 0.0, "matches the gold answer" if same else f"expected {str(gold)[:60]}", pred)
