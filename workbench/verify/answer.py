"""The one answer extractor: where a completion's final answer is, as written (no sympy here).

    thinking, answer, closed = split_thinking(completion, opened=True)
    found = extract_answer(answer)        # Extracted(text, rule, boxes)

Used by the math verifier, answer consistency (`inspect`), the app's framed final answer and
eval. Rules, in order, on the text after the last `</think>`:
- `boxed`: every top-level `\\boxed{...}` / `\\fbox{...}` / `\\boxed 5`; a box never closed (cut
  off) or an empty box means no answer; several boxes are all kept (`boxes`) for the verifier,
  `text` is the last one.
- `answer phrase`: the last "final answer is / answer: / the answer is X" (or a "Final Answer"
  heading): what follows, read as below, or a short text answer ("Evelyn").
- `sole expression`: the whole answer is one math expression (`$\\frac13$`, `x = 5`), or it holds
  exactly one distinct math span or number ("She has 18 dollars left.").
Anything else has no answer: never "the last number in the text" ("AZYUK2A", "41 or 42").
Every scan is one linear pass (model output is untrusted).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

OPEN, CLOSE = "<think>", "</think>"
MAX_SOLE_CHARS = 300  # a whole answer longer than this is prose, not one expression
MAX_TEXT_ANSWER_CHARS = 60  # "the answer is Evelyn": a short text answer after an answer phrase


@dataclass(frozen=True)
class Extracted:
    """`text`: the final answer as written, or None; `rule`: how it was found, or why there is none.
    `parts`: every boxed answer in order, or, when none is marked, every candidate (`text` is then
    None): several that differ are the verifier's business (they may be the gold set, "1 and 2")."""

    text: str | None
    rule: str
    parts: tuple[str, ...] = ()

    @property
    def anchored(self) -> bool:
        """Marked as the answer by the model (boxed or after an answer phrase), not inferred."""
        return self.text is not None and self.rule in ("boxed", "answer phrase")


def split_thinking(text: str, opened: bool = False) -> tuple[str, str, bool]:
    """(thinking, answer, closed), split on the LAST `</think>`. `opened`: the prompt opened the
    think block. `closed` is False only when a think block was opened (by the prompt, or by a
    `<think>` in the text) and never closed: then everything is thinking and there is no answer."""
    end = text.rfind(CLOSE)
    if end >= 0:
        thinking = text[:end]
        start = thinking.find(OPEN)
        return (thinking[start + len(OPEN):] if start >= 0 else thinking), text[end + len(CLOSE):], True
    start = text.find(OPEN)
    if start >= 0:
        return text[start + len(OPEN):], "", False
    if opened:
        return text, "", False
    return "", text, True


# ---- boxes ----------------------------------------------------------------------------------------

BOX_TOKENS = re.compile(r"\\(?:boxed|fbox)\s*\{|\\boxed[ \t]+([^\s${}\\]+)|\\[{}]|[{}]")


def boxed_contents(text: str) -> tuple[list[str], bool]:
    """(contents of every top-level box in order, True if a box was never closed). One pass."""
    found, stack, cut_off = [], [], False  # stack: (is a box, where its content starts)
    open_boxes = 0
    for m in BOX_TOKENS.finditer(text):
        token = m.group(0)
        if token in ("\\{", "\\}"):
            continue  # a literal brace (sets): not grouping
        if m.group(1) is not None:  # `\boxed 5`
            if not open_boxes:
                found.append(m.group(1))
        elif token == "{":
            stack.append((False, m.end()))
        elif token == "}":
            if stack:
                is_box, start = stack.pop()
                if is_box:
                    open_boxes -= 1
                    if not open_boxes:
                        found.append(text[start:m.start()].strip())
        else:  # \boxed{ or \fbox{
            stack.append((True, m.end()))
            open_boxes += 1
    if open_boxes:
        cut_off = True
    return found, cut_off


# ---- spans of math and numbers --------------------------------------------------------------------

MAX_SPAN = 2000  # a math span is bounded, so an unclosed `\(` costs at most this much, not a scan to the end
MATH_SPAN = re.compile(r"\$\$(.{1,%d}?)\$\$|(?<!\\)\$([^$]{1,%d}?)(?<!\\)\$|\\\((.{1,%d}?)\\\)|\\\[(.{1,%d}?)\\\]"
                       % ((MAX_SPAN,) * 4), re.DOTALL)
NUMBER = re.compile(r"(?<![\w.\\])[-+]?(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?(?:/\d+)?|\.\d+)(?![\w])")
COMMAND_OR_TEXT = re.compile(r"\\(?:text|textbf|mathrm|mbox|operatorname)\s*\{[^{}]*\}|\\[A-Za-z]+")
WORD = re.compile(r"[A-Za-z]{2,}")


def unwrap_math(text: str) -> str:
    """Without one pair of surrounding math delimiters ($...$, $$...$$, \\(...\\), \\[...\\])."""
    s = text.strip()
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if len(s) > len(left) + len(right) and s.startswith(left) and s.endswith(right):
            inner = s[len(left):-len(right)]
            if left != "$" or "$" not in inner:
                return inner.strip()
    return s


def is_expression(text: str) -> bool:
    """One line of math with no words outside LaTeX commands: `\\frac{10}{9}`, `x \\geq 5`, `(C)`."""
    return ("\n" not in text and 0 < len(text) <= MAX_SOLE_CHARS
            and not WORD.search(COMMAND_OR_TEXT.sub(" ", text)))


def sole_answer(text: str) -> tuple[str | None, str, tuple[str, ...]]:
    """(the one expression `text` is or holds, or None; the rule or why not; the candidates)."""
    whole = unwrap_math(text.strip().rstrip(".").strip())
    if is_expression(whole):
        return whole, "sole expression", (whole,)
    found = [(m.start(), next(g for g in m.groups() if g is not None).strip()) for m in MATH_SPAN.finditer(text)]
    outside = MATH_SPAN.sub(lambda m: " " * len(m.group(0)), text)  # same length: positions stay comparable
    found += [(m.start(), m.group(0)) for m in NUMBER.finditer(outside)]
    candidates = [c for _, c in sorted(found) if c]  # in the order written
    distinct = list(dict.fromkeys(c.replace(" ", "") for c in candidates))
    if len(distinct) == 1:
        return candidates[0], "sole expression", (candidates[0],)
    if not distinct:
        return None, "no final answer found", ()
    shown = ", ".join(distinct[:4]) + (", ..." if len(distinct) > 4 else "")
    return None, f"several candidate answers ({shown[:80]}) and none marked as final", tuple(candidates)


# ---- answer phrases -------------------------------------------------------------------------------

ANSWER_PHRASE = re.compile(
    r"(?i)\b(?:(final\s+answer)|answer)\b(?:\s*\*\*)?[ \t]*(?:\bis\b|:|=)?(?:\s*\*\*)?[ \t]*:?[ \t]*")


def phrase_answer(text: str) -> tuple[str | None, str, tuple[str, ...]] | None:
    """What follows the last answer phrase, or None when there is no phrase."""
    last, end = None, len(text.rstrip())
    for m in ANSWER_PHRASE.finditer(text):
        connected = bool(re.search(r"(?i)\bis\b|[:=]", m.group(0)))
        heading = m.group(1) and (text.startswith("\n", m.end()) or m.end() >= end)
        if connected or heading:
            last = m
    if last is None:
        return None
    start = len(text) - len(text[last.end():].lstrip("\n \t"))
    stop = text.find("\n", start)
    line = text[start:stop if stop >= 0 else len(text)].strip().strip("*").strip()
    if not line:
        return None, "nothing after the answer phrase", ()
    found, rule, candidates = sole_answer(line)
    if found is not None:
        return found, "answer phrase", candidates
    plain = line.rstrip(".").strip()
    if (not candidates and len(plain) <= MAX_TEXT_ANSWER_CHARS
            and not re.search(r"\d|\$|\\[(\[]", plain)):
        return plain, "answer phrase", (plain,)  # a text answer: "The answer is Evelyn."
    return None, rule, candidates


def extract_answer(answer: str) -> Extracted:
    """The final answer in an answer (the text after `</think>`: see `split_thinking`)."""
    boxes, cut_off = boxed_contents(answer)
    if cut_off:
        return Extracted(None, "a \\boxed{ is never closed (cut off)")
    if boxes:
        if any(not b for b in boxes):
            return Extracted(None, "empty \\boxed{}")
        return Extracted(boxes[-1], "boxed", tuple(boxes))
    phrase = phrase_answer(answer)
    if phrase is not None:
        return Extracted(*phrase)
    return Extracted(*sole_answer(answer))


def final_answer(completion: str, opened: bool = False) -> Extracted:
    """The final answer of a whole completion: after the last `</think>`; none if thinking never closed."""
    _, answer, closed = split_thinking(completion, opened)
    if not closed:
        return Extracted(None, "thinking never closed: no answer")
    return extract_answer(answer)
