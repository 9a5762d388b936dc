"""The math verifier (math/2): our extraction and policies on top of Math-Verify's parse and verify.

1. The answer is read after the last `</think>` (`workbench.verify.answer`, the one extractor);
   with `think_in_prompt`, a completion that never closes its thinking has no answer.
2. Extraction: boxed, else an answer phrase, else a sole expression; never the last number.
   Several boxed answers must each equal the gold answer, or together be the gold set.
3. Comparison, the first rule that applies decides:
   - `number`: both are plain numbers (leading zeros, thousands separators `1,000` `11,\\!111`
     `1{,}000`, `a/b`, `\\frac{a}{b}`, `%`, units, `x =`): exact rationals; a decimal equals an
     exact value when it is that value rounded or truncated to its digits and within REL_TOL
     (0.3333 for 1/3; not 1000.01 for 1000), or within an example's own `tolerance`.
   - `text`: a word or choice answer (`\\text{Evelyn}`, `(C)`): compared as text, case-insensitively.
   - `math-verify`: both parsed by Math-Verify's LaTeX parser and compared by its `verify`
     (strict: sets are not tuples; intervals as inequalities allowed), then a decimal answer
     against a symbolic gold value numerically (3.1416 for \\pi), with the rounding rule above.
Math-Verify runs with its own signal.alarm timeouts off (`parsing_timeout=None`,
`timeout_seconds=None`): alarms work only on a main thread and cannot stop a bomb inside C code;
untrusted input goes through `workbench.verify.pool`, whose workers are killed at the deadline.
"""

from __future__ import annotations

import logging
import re
from fractions import Fraction
from functools import lru_cache

from workbench.verify.answer import Extracted, final_answer, unwrap_math
from workbench.verify.registry import Verdict

VERSION = "2"
REL_TOL = 1e-4  # a rounded decimal must also be this close (relative); an example's `tolerance` replaces both
MAX_ANSWER_CHARS = 1000  # longer "answers" are not answers (and are where sympy bombs hide)
MAX_PARTS = 8  # more different boxes or candidates than this are a list of guesses, not an answer
SHOWN = 60  # characters of an answer quoted in a reason

# ---- normalisation and exact numbers -------------------------------------------------------------

TEXT_COMMAND = re.compile(r"\\(?:text|textbf|textit|mbox|mathrm|textrm|operatorname)\s*\{([^{}]*)\}")
UNIT_WORDS = re.compile(r"^([-+]?[\d.,/]+)\s*(?:[a-zA-Z]{2,}\.?\s*){1,3}$")  # "18 dollars", "10 square cm"
VARIABLE_PREFIX = re.compile(r"^[a-zA-Z]\s*=\s*(?=[^=]+$)")  # "x = 5" -> "5"
SPACING = ("\\left", "\\right", "\\!", "\\,", "\\;", "\\:", "\\ ", "\\displaystyle", "~")


def normalize(s: str) -> str:
    """Light normalisation for the number and text rules (Math-Verify normalises for itself)."""
    s = unwrap_math(str(s)).strip()
    s = re.sub(r",\s*\\!\s*", ",", s)  # 11,\! 111: a thousands separator
    for old in SPACING:
        s = s.replace(old, "" if old != "~" else " ")
    for old, new in (("{,}", ","), ("\\dfrac", "\\frac"), ("\\tfrac", "\\frac"), ("^\\circ", ""), ("^{\\circ}", ""),
                     ("°", ""), ("\\%", "%"), ("\\$", ""), ("$", "")):
        s = s.replace(old, new)
    without_text = TEXT_COMMAND.sub("", s).strip()
    s = without_text if without_text else TEXT_COMMAND.sub(r"\1", s).strip()  # units go; "\text{(C)}" stays
    s = UNIT_WORDS.sub(r"\1", s)
    s = s.strip().rstrip(".").strip()
    while len(s) > 2 and s[0] == "{" and s[-1] == "}" and "{" not in s[1:-1]:
        s = s[1:-1].strip()
    return s


THOUSANDS = re.compile(r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
DECIMAL_COMMA = re.compile(r"[-+]?\d+,\d+")
LATEX_FRACTION = re.compile(r"([-+]?)\\frac\s*(?:\{\s*([-+]?\d+)\s*\}|(\d))\s*(?:\{\s*([-+]?\d+)\s*\}|(\d))")
PLAIN_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:/\d+)?")


class Number:
    """A plain number as written: exact value, decimal places (None: exact), and whether it had %."""

    __slots__ = ("value", "places", "percent")

    def __init__(self, value: Fraction, places: int | None, percent: bool) -> None:
        self.value, self.places, self.percent = value, places, percent


def plain_number(text: str, decimal_comma: bool = False) -> Number | None:
    """`25`, `025`, `1,000`, `-2.5`, `3/8`, `\\frac{1}{3}`, `12.5%`; `3,5` only with `decimal_comma`."""
    s = text.strip()
    percent = s.endswith("%")
    s = s.rstrip("%").strip()
    if len(s) > 100 or re.search(r"\d\s+\d", s):  # "41 42" is two numbers, not 4142
        return None
    if THOUSANDS.fullmatch(s):
        s = s.replace(",", "").replace(" ", "")
    elif decimal_comma and DECIMAL_COMMA.fullmatch(s):
        s = s.replace(",", ".")
    s = s.replace(" ", "")
    m = LATEX_FRACTION.fullmatch(s)
    if m:
        sign, num_a, num_b, den_a, den_b = m.groups()
        den = int(den_a or den_b)
        if den == 0:
            return None
        value = Fraction(int(num_a or num_b), den)
        return Number(-value if sign == "-" else value, None, percent)
    if not PLAIN_NUMBER.fullmatch(s):
        return None
    try:
        value = Fraction(s)
    except (ValueError, ZeroDivisionError):
        return None
    places = len(s.split(".", 1)[1]) if "." in s and "/" not in s else None
    return Number(value, places or None, percent)


def close_enough(pred: Fraction | float, places: int | None, gold: Fraction | float, tol: float | None) -> bool:
    """A decimal `pred` (with `places` digits after the point) against an exact `gold` value."""
    diff = abs(Fraction(pred) - Fraction(gold))  # exact: 1000.01 - 1000 is not below 0.01
    scale = max(Fraction(1), abs(Fraction(gold)))
    if tol is not None:  # the example's own tolerance: relative, nothing else
        return diff <= Fraction(tol) * scale
    if places is None:
        return False
    # rounded or truncated to its digits (strictly less than one unit in its last place), and close
    return diff < Fraction(1, 10 ** places) and diff <= Fraction(REL_TOL) * scale


def numbers_equal(gold: Number, pred: Number, tol: float | None) -> bool:
    scales = [(1, 1)]
    if gold.percent != pred.percent:  # 50% against 0.5: also read the % as /100
        scales.append((Fraction(1, 100), 1) if gold.percent else (1, Fraction(1, 100)))
    for g_scale, p_scale in scales:
        g, p = gold.value * g_scale, pred.value * p_scale
        if g == p:
            return True
        if tol is not None:
            if close_enough(p, None, g, tol):
                return True
            continue
        if pred.places and close_enough(p, pred.places, g, None):
            return True
        if gold.places and pred.places is None and close_enough(g, gold.places, p, None):
            return True  # 1/3 against a gold 0.3333
    return False


# ---- text answers -------------------------------------------------------------------------------

CHOICE = re.compile(r"\(?([A-Ha-h])\)?")
TEXT_ANSWER = re.compile(r"[A-Za-z][A-Za-z']+(?: [A-Za-z][A-Za-z']+)*")  # words of 2+ letters: not "p - q"


def text_answer(gold: str) -> str | None:
    """The gold answer as a word or choice (`\\text{Evelyn}`, `(C)`, `\\text{E}`), else None."""
    s = unwrap_math(str(gold)).strip()
    whole_text = re.fullmatch(r"\\(?:text|textbf|mathrm|textrm|mbox)\s*\{([^{}]*)\}", s)
    inner = whole_text.group(1).strip() if whole_text else s
    if CHOICE.fullmatch(inner) and (whole_text or inner.startswith("(")):
        return CHOICE.fullmatch(inner).group(1).upper()
    if TEXT_ANSWER.fullmatch(inner) and (whole_text or len(inner) >= 3):
        return re.sub(r"\s+", " ", inner).lower()
    return None


def as_text(pred: str) -> str:
    s = normalize(pred)
    s = re.sub(r"\\(?:text|textbf|mathrm|textrm|mbox)\s*\{([^{}]*)\}", r"\1", s).strip()
    m = CHOICE.fullmatch(s)
    return m.group(1).upper() if m else re.sub(r"\s+", " ", s).lower()


# ---- Math-Verify ----------------------------------------------------------------------------------

_math_verify = None


def math_verify():
    """Math-Verify, imported on first use (it imports sympy and an ANTLR LaTeX parser: ~1 s)."""
    global _math_verify
    if _math_verify is None:
        for name in ("math_verify", "math_verify.parser", "math_verify.grader"):
            logging.getLogger(name).setLevel(logging.ERROR)  # "timeout disabled": we time out ourselves
        import math_verify as mv

        _math_verify = mv
    return _math_verify


def warm_up() -> None:
    """Import Math-Verify and run its parser and comparison once (~2 s the first time), so that a
    worker pays this before it says it is ready, not inside a verification's timeout."""
    math_verify_equal(parse_math("\\frac{x}{2}"), parse_math("0.5x"))
    parse_math.cache_clear()


@lru_cache(maxsize=1024)  # gold answers repeat across samples; parsed forms are immutable
def parse_math(text: str):
    """Math-Verify's parse of one answer as LaTeX (boxed first), or None. Only the LaTeX extractor:
    its plain-expression extractor reads `2 \\lor 3` as 3 and `0, 1, \\ldots, 100` as 100."""
    mv = math_verify()
    config = [mv.LatexExtractionConfig(boxed_match_priority=0)]
    parsed = mv.parse(f"${unwrap_math(text)}$", extraction_config=config, fallback_mode="no_fallback",
                      parsing_timeout=None)
    return parsed[0] if parsed else None


def math_verify_equal(gold_parsed, pred_parsed) -> bool:
    return bool(math_verify().verify([gold_parsed], [pred_parsed], strict=True, allow_set_relation_comp=True,
                                     timeout_seconds=None))


def numeric_value(parsed) -> complex | None:
    try:
        if getattr(parsed, "free_symbols", None):
            return None
        return complex(parsed.evalf(30))
    except (TypeError, ValueError, AttributeError, OverflowError):
        return None


def shown(x) -> str:
    s = str(x).replace("\n", " ")
    return s if len(s) <= SHOWN else s[:SHOWN] + "…"


# ---- the verdict -----------------------------------------------------------------------------------

class Comparison:
    """The outcome of comparing one answer with the gold answer, and how it was decided."""

    __slots__ = ("same", "rule", "gold_parsed", "answer_parsed")

    def __init__(self, same: bool | None, rule: str, gold_parsed: str = "", answer_parsed: str = "") -> None:
        self.same, self.rule, self.gold_parsed, self.answer_parsed = same, rule, gold_parsed, answer_parsed


def compare(gold: str, pred: str, tol: float | None = None, explain: bool = False) -> Comparison:
    """Is `pred` the gold answer? same=None: the gold answer cannot be read."""
    gold_text, pred_text = normalize(gold), normalize(pred)
    if not gold_text:
        return Comparison(None, "gold answer is empty")
    if not pred_text:
        return Comparison(False, "empty answer")
    gold_number = plain_number(VARIABLE_PREFIX.sub("", gold_text))
    pred_number = plain_number(VARIABLE_PREFIX.sub("", pred_text),
                               decimal_comma=gold_number is not None and gold_number.places is not None)
    if gold_number and pred_number:
        same = numbers_equal(gold_number, pred_number, tol)
        return Comparison(same, "number", str(gold_number.value), str(pred_number.value))
    word = text_answer(gold)
    if word is not None:
        return Comparison(as_text(pred) == word, "text", word, as_text(pred))
    gold_parsed = parse_math(str(gold))  # Math-Verify normalises for itself (units, \left, ...)
    if gold_parsed is None:
        if gold_text.replace(" ", "") == pred_text.replace(" ", ""):
            return Comparison(True, "same text (gold answer not parseable)", "", "")
        return Comparison(None, "cannot read the gold answer")
    pred_parsed = parse_math(pred)
    if pred_parsed is None:
        return Comparison(False, "cannot read the answer as math", shown(gold_parsed) if explain else "")
    parsed = (shown(gold_parsed), shown(pred_parsed)) if explain else ("", "")
    if "\\{" in pred and type(gold_parsed).__name__ in ("Interval", "Tuple"):
        return Comparison(False, "a set for a point or an interval", *parsed)  # Math-Verify reads {1,2} as (1,2)
    if math_verify_equal(gold_parsed, pred_parsed):
        return Comparison(True, "math-verify", *parsed)
    if pred_number is not None and pred_number.places and not gold_number:  # 3.1416 for \pi
        value = numeric_value(gold_parsed)
        if value is not None and value.imag == 0:
            same = close_enough(pred_number.value, pred_number.places, value.real, tol)
            return Comparison(same, "decimal against the gold value", *parsed)
    return Comparison(False, "math-verify", *parsed)


def gold_of(example: dict):
    gold = example.get("answer")
    if isinstance(gold, float) and gold.is_integer():
        gold = int(gold)  # AMC answers are stored as 27.0
    return gold


def judge(found: Extracted, gold: str, tol: float | None, explain: bool) -> tuple[Verdict, dict]:
    """The verdict on an extracted answer, and (with `explain`) how it was reached."""
    details = {"extracted": found.text, "extraction": found.rule}
    parts = list(dict.fromkeys(found.parts))
    too_long = sum(map(len, parts)) > MAX_ANSWER_CHARS
    # unmarked candidates can only be a gold list or set ("1 and 2"); checked only then: sympy on prose is slow
    if found.text is None and (len(parts) < 2 or too_long or len(parts) > MAX_PARTS or "," not in normalize(gold)):
        return Verdict(0.0, found.rule), details
    if len(parts) > MAX_PARTS:
        return Verdict(0.0, f"{len(parts)} different boxed answers", found.text[:80]), details
    if len(found.text or "") > MAX_ANSWER_CHARS or too_long:
        return Verdict(0.0, f"answer longer than {MAX_ANSWER_CHARS} characters", found.text[:80] + "…"), details
    if len({p.replace(" ", "") for p in parts}) > 1:
        if found.text is not None:  # several boxes: each must be the gold answer ...
            each = [compare(gold, box, tol) for box in parts]
            if all(c.same for c in each):
                details.update(decided_by="each box: " + ", ".join(dict.fromkeys(c.rule for c in each)))
                return Verdict(1.0, f"all {len(found.parts)} boxed answers match", found.text), details
        together = compare(gold, ", ".join(parts), tol, explain)  # ... or together be the gold set
        what = "boxed answers" if found.text is not None else "candidate answers"
        details.update(gold_parsed=together.gold_parsed, answer_parsed=together.answer_parsed,
                       decided_by=f"{together.rule} (the {len(parts)} {what} as one set)")
        if together.same:
            return Verdict(1.0, f"the {len(parts)} {what} are the gold set", ", ".join(parts)), details
        if together.same is None:
            return Verdict(None, f"cannot read the gold answer {shown(gold)!r}", found.text), details
        if found.text is None:
            return Verdict(0.0, found.rule), details
        return Verdict(0.0, f"{len(parts)} different {what} ({shown(', '.join(parts))}); "
                       f"expected {shown(gold)}", found.text), details
    pred = found.text
    c = compare(gold, pred, tol, explain)
    details.update(gold_parsed=c.gold_parsed, answer_parsed=c.answer_parsed, decided_by=c.rule)
    if c.same is None:
        return Verdict(None, f"cannot read the gold answer {shown(gold)!r}", pred), details
    if c.same:
        return Verdict(1.0, f"matches the gold answer ({c.rule})", pred), details
    return Verdict(0.0, f"expected {shown(gold)} ({c.rule})", pred), details


def verify(completion: str, example: dict) -> Verdict:
    gold = gold_of(example)
    if gold is None or str(gold).strip() == "":
        return Verdict(None, "example has no answer")
    tol = example.get("tolerance")
    tol = None if tol is None else float(tol)
    explain = bool(example.get("explain"))
    found = final_answer(completion, opened=bool(example.get("think_in_prompt")))
    verdict, details = judge(found, str(gold), tol, explain)
    if not explain:
        return verdict
    return Verdict(verdict.score, verdict.reason, verdict.extracted, details)
