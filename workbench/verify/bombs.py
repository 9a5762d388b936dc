"""Completions built to hang or exhaust a math checker (sympy and Math-Verify on untrusted text).

One list, used by the tests (each must get a verdict within the timeout) and by
scripts/bench_verify.py (worst-case time to a verdict).
"""

EXPRESSION_BOMBS = [
    "\\boxed{10^{10^{10}}}",
    "\\boxed{10**10**10}",
    "\\boxed{9^{9^{9^{9}}}}",
    "\\boxed{(10^{9})!}",
    "\\boxed{factorial(10**9)}",
    "\\boxed{" + "(" * 3000 + "1" + ")" * 3000 + "}",
    "\\boxed{" + "{" * 5000 + "}" * 5000 + "}",
    "\\boxed{\\sqrt{" * 500 + "2" + "}}" * 500,
    "x" * 100_000,
    "\\boxed{" + "9" * 100_000 + "}",
    "1+" * 50_000 + "1",
]
