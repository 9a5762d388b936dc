"""Arithmetic problems and their column-by-column thinking traces (r1-nano's cold-start data).

Every line has a fixed layout and starts with the state the next line needs (what is left of the
numbers, right-aligned), so each digit the model reads sits at a fixed distance above where it
is written: that is what lets a ~2M-parameter model learn this in minutes.

    What is 4821+937?   ->   04821+00937
                             .0482+.0093 1+7+0=08 ....8
                             ..048+..009 2+3+0=05 ...58
                             ...04+...00 8+9+0=17 ..758
                             ....0+....0 4+0+1=05 .5758
                             .....+..... 0+0+0=00 05758
                             </think>
                             The answer is \\boxed{5758}.

A column line reads `x op y op carry = CD`: D is the digit written, C the carry (or borrow) into
the next column, then the result so far. Multiplication (2 by 2 digits) writes two partial
products the same way (turning a and b so the next digits are in the last columns), then adds
them. A negative difference swaps the numbers first.
"""

from __future__ import annotations

import random

WIDTH = 5  # columns in every addition/subtraction: 4 digits plus the carry out

# The eval suite's wording (DeepSeek's recommended line) and a few plain ones.
STEP_BY_STEP = "\nPlease reason step by step, and put your final answer within \\boxed{}."
PROMPTS = {
    op: ("What is {a}%s{b}?" % op + STEP_BY_STEP,) * 4
    + ("What is {a}%s{b}?" % op, "What is {a} %s {b}?" % op, "Compute {a}%s{b}." % op, "{a}%s{b}=?" % op)
    for op in "+-*"
}


def _columns(top: str, bottom: str, op: str) -> list[str]:
    """Column lines for top op bottom (WIDTH digits each; top >= bottom for subtraction).

    Each line starts with what is left of both numbers (the digit just used dropped, dots on the
    left), so the next digits are always the ones right above, at the same column."""
    lines, carry, result = [], 0, ""
    for i in range(WIDTH - 1, -1, -1):
        x, y = int(top[i]), int(bottom[i])
        if op == "+":
            carry_in = carry
            carry, digit = divmod(x + y + carry_in, 10)
        else:
            carry_in = carry
            total = x - y - carry_in
            carry, digit = (1, total + 10) if total < 0 else (0, total)
        result = str(digit) + result
        rest = f"{top[:i]:.>{WIDTH}}{op}{bottom[:i]:.>{WIDTH}}"
        lines.append(f"{rest} {x}{op}{y}{op}{carry_in}={carry}{digit} {result:.>{WIDTH}}")
    return lines


def _partials(a: int, b: int) -> list[str]:
    """a*b (2 digits each) as two partial products. Each line starts with a and b turned so that
    the digits the next line multiplies sit in the same two columns (a's last, b's last)."""
    lines, a_s, b_s = [], f"{a:02d}", f"{b:02d}"
    for half in range(2):
        carry, result = 0, ""
        d = int(b_s[1])
        for i in range(2):
            x = int(a_s[1])
            carry_in = carry
            carry, digit = divmod(x * d + carry_in, 10)
            result = (f"{carry}{digit}" if i == 1 else str(digit)) + result
            a_s = a_s[::-1]
            if i == 1:
                b_s = b_s[::-1]
            lines.append(f"{a_s}*{b_s} {x}*{d}+{carry_in}={carry}{digit} {result:.>3}")
    return lines


def trace(a: int, op: str, b: int) -> tuple[str, str]:
    """(thinking, answer) for a op b; thinking has no tags."""
    if op == "*":
        p1, p2 = a * (b % 10), a * (b // 10) * 10
        lines = [f"{a}*{b}", *_partials(a, b),
                 f"{p1:0{WIDTH}d}+{p2:0{WIDTH}d}", *_columns(f"{p1:0{WIDTH}d}", f"{p2:0{WIDTH}d}", "+")]
        value = a * b
    elif op == "+":
        lines = [f"{a:0{WIDTH}d}+{b:0{WIDTH}d}", *_columns(f"{a:0{WIDTH}d}", f"{b:0{WIDTH}d}", "+")]
        value = a + b
    else:
        top, bottom = (a, b) if a >= b else (b, a)
        lines = [f"{a:0{WIDTH}d}-{b:0{WIDTH}d}"]
        if a < b:
            lines.append(f"{top:0{WIDTH}d}-{bottom:0{WIDTH}d} swap, the answer is negative")
        lines += _columns(f"{top:0{WIDTH}d}", f"{bottom:0{WIDTH}d}", "-")
        value = a - b
    return "\n".join(lines), f"The answer is \\boxed{{{value}}}."


def problem(rng: random.Random, op: str | None = None) -> dict:
    """One problem: 2- to 4-digit + and - (mostly 3 and 4), 2-digit by 2-digit *; a verifier-style example."""
    op = op or rng.choice("+-*")
    if op == "*":
        a, b = rng.randint(10, 99), rng.randint(10, 99)
    else:
        a, b = (rng.randint(*rng.choice(((10, 99), (100, 999), (100, 999), (1000, 9999), (1000, 9999))))
                for _ in range(2))
    prompt = rng.choice(PROMPTS[op]).replace("{a}", str(a)).replace("{b}", str(b))
    return {"prompt": prompt, "answer": str(eval(f"{a}{op}{b}")), "a": a, "op": op, "b": b}  # noqa: S307 - digits only


def sft_example(rng: random.Random, op: str | None = None) -> dict:
    """A chat with thinking, in the JSONL format `workbench train sft` reads."""
    p = problem(rng, op)
    thinking, answer = trace(p["a"], p["op"], p["b"])
    return {"messages": [{"role": "user", "content": p["prompt"]},
                         {"role": "assistant", "content": f"<think>\n{thinking}\n</think>\n{answer}"}]}
