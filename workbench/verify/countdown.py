"""The countdown verifier (TinyZero): reach `target` using the given `numbers`, each at most once.

The expression is parsed with `ast` and walked by hand: only numbers, + - * /, unary minus
and parentheses; values are exact fractions; nothing is ever `eval`ed. Every number must be
used exactly once (TinyZero's rule) unless the example says `"use_all": false`.
Found in the answer (after </think>): the last <answer>...</answer>, else the last \\boxed{...},
else the last run of text that looks like an expression; "= target" at the end is ignored.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from fractions import Fraction

from workbench.verify.answer import boxed_contents, split_thinking
from workbench.verify.registry import Verdict

VERSION = "1"
MAX_EXPRESSION_CHARS = 200  # a countdown expression is short; longer input is not parsed at all
ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
EXPRESSION_IN_TEXT = re.compile(r"[\d(][\d\s()+\-*/×÷]*[\d)]")
OPERATORS = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
             ast.Div: lambda a, b: a / b}


class BadExpression(ValueError):
    pass


def extract_expression(completion: str) -> str | None:
    text = split_thinking(completion)[1]
    tags = ANSWER_TAG.findall(text)
    boxes = boxed_contents(text)[0]
    found = tags[-1] if tags else (boxes[-1] if boxes else None)
    if found is None:
        candidates = [m for m in EXPRESSION_IN_TEXT.findall(text) if re.search(r"[+\-*/×÷]", m)]
        found = candidates[-1] if candidates else None
    if found is None:
        return None
    found = found.replace("×", "*").replace("÷", "/").replace("\\times", "*").replace("\\div", "/")
    found = found.replace("\\cdot", "*").replace("\\left", "").replace("\\right", "").strip().strip("$")
    return found.split("=")[0].strip()


def evaluate(expression: str) -> tuple[Fraction, list[int]]:
    """(value, the integer literals used) of an arithmetic expression; BadExpression otherwise."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise BadExpression(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(expression, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise BadExpression("not an arithmetic expression") from None
    used: list[int] = []

    def walk(node) -> Fraction:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and type(node.value) is int:
            used.append(node.value)
            return Fraction(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in OPERATORS:
            left, right = walk(node.left), walk(node.right)
            if isinstance(node.op, ast.Div) and right == 0:
                raise BadExpression("division by zero")
            return OPERATORS[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        raise BadExpression(f"{type(node).__name__} is not allowed (only numbers, + - * / and parentheses)")

    return walk(tree), used


def verify(completion: str, example: dict) -> Verdict:
    numbers, target = example.get("numbers"), example.get("target")
    if not isinstance(numbers, list) or not all(type(n) is int for n in numbers) or type(target) is not int:
        return Verdict(None, "example needs integer `numbers` and `target`")
    expression = extract_expression(completion)
    if not expression:
        return Verdict(0.0, "no expression found")
    try:
        value, used = evaluate(expression)
    except BadExpression as e:
        return Verdict(0.0, str(e), expression[:80])
    extra = Counter(used) - Counter(numbers)
    if extra:
        return Verdict(0.0, f"uses {sorted(extra.elements())} beyond the given numbers", expression)
    if example.get("use_all", True) and Counter(used) != Counter(numbers):
        return Verdict(0.0, f"does not use {sorted((Counter(numbers) - Counter(used)).elements())}", expression)
    if value != target:
        return Verdict(0.0, f"equals {value}, not {target}", expression)
    return Verdict(1.0, f"reaches {target}", expression)
