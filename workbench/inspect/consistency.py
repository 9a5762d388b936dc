"""Answer consistency: the final answer reached in the thinking versus the one in the answer pane.

Answers are extracted by `workbench.verify.answer` (boxed, else "the answer is X", else a sole expression);
the thinking's answer, when it marks none, is the last value it wrote.
They are compared with the math verifier (`workbench.verify`, when installed), else after light
normalisation (spaces, $, trailing period, thousands commas) and numerically when both are numbers.
"""

from __future__ import annotations

import re
from fractions import Fraction

from workbench.verify.answer import extract_answer as find_answer

MAX_ANSWER = 1000  # characters; longer "answers" are runaway text, not compared


def extract_answer(text: str) -> str | None:
    """The final answer in `text` (boxed, else after "the answer is", else a sole expression): the one
    extractor of `workbench.verify.answer`, so the app, eval and the verifiers agree on it."""
    return find_answer(text).text


def reached_in_thinking(thinking: str) -> str | None:
    """The answer the thinking arrived at: the one it marks (boxed, "the answer is"), else the last value it
    wrote (the extractor's candidates, in order). Only for this comparison: a verifier never guesses so."""
    found = find_answer(thinking)
    return found.text if found.text is not None or not found.parts else found.parts[-1]


def normalise(answer: str) -> str:
    a = answer.strip().strip("$").strip().rstrip(".")
    a = re.sub(r"\\(?:left|right|!|,|;)", "", a)
    a = re.sub(r"\\[dt]?frac\{([^{}]*)\}\{([^{}]*)\}", r"(\1)/(\2)", a)
    a = re.sub(r"\s+", "", a)
    if re.fullmatch(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?", a):
        a = a.replace(",", "")
    return a


def _number(a: str) -> Fraction | None:
    if len(a) > MAX_ANSWER:  # not an answer to compare as a number (and int() refuses over 4,300 digits)
        return None
    m = re.fullmatch(r"\(?(-?\d+(?:\.\d+)?)\)?(?:/\(?(\d+)\)?)?", a)
    if not m:
        return None
    value = Fraction(m.group(1))
    return value / int(m.group(2)) if m.group(2) else value


def same_answer(a: str, b: str) -> bool:
    na, nb = normalise(a), normalise(b)
    if na == nb:
        return True
    x, y = _number(na), _number(nb)
    return x is not None and y is not None and x == y


def math_verifier():
    """The math verifier of `workbench.verify`, run in its worker pool with a time limit (model output
    is untrusted: a sympy bomb must not hang us)."""
    from workbench.verify import verify_with_timeout

    return lambda completion, example: verify_with_timeout("math", completion, example)


def verify_against(completion: str, gold: str, verifier=None) -> dict:
    """Check `completion` against a gold answer: with the math verifier, or (verifier=False) by comparison.
    score is 1.0 / 0.0, or None when the verifier cannot judge (timeout, unreadable gold)."""
    verifier = math_verifier() if verifier is None else verifier  # False: compare without a verifier
    if verifier:
        try:
            verdict = verifier(completion, {"answer": gold})
            score = None if verdict.score is None else float(verdict.score)
            return {"score": score, "reason": str(verdict.reason), "method": "math verifier"}
        except Exception as e:  # noqa: BLE001 - model output is untrusted; a verifier crash is a verdict
            return {"score": None, "reason": f"verifier failed: {type(e).__name__}: {e}", "method": "math verifier"}
    got = extract_answer(completion)
    ok = got is not None and same_answer(got, gold)
    return {"score": 1.0 if ok else 0.0, "reason": f"extracted {got!r}, expected {gold!r}", "method": "normalised"}


def consistency(thinking: str, answer: str, verifier=None) -> dict:
    """Cheap comparison first; the math verifier only for answers it cannot settle (e.g. 1/2 vs 0.5x)."""
    in_thinking, in_answer = reached_in_thinking(thinking), extract_answer(answer)
    result = {"thinking_answer": in_thinking, "final_answer": in_answer, "consistent": None, "method": None}
    if in_thinking is None or in_answer is None or max(len(in_thinking), len(in_answer)) > MAX_ANSWER:
        return result  # nothing to compare, or not an answer (a 100,000-digit "number" is a runaway)
    if same_answer(in_thinking, in_answer):
        return {**result, "consistent": True, "method": "normalised"}
    if verifier is False or (_number(normalise(in_thinking)) is not None and _number(normalise(in_answer)) is not None):
        return {**result, "consistent": False, "method": "normalised"}
    verdict = verify_against(f"\\boxed{{{in_answer}}}", in_thinking, verifier)
    consistent = None if verdict["score"] is None else verdict["score"] >= 1.0
    return {**result, "consistent": consistent, "method": verdict["method"]}
