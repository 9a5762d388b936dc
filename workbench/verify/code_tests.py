"""The code verifier: run a completion's Python against the example's unit tests in the sandbox.

Example fields (HumanEval format): `prompt` (the function signature and docstring), `test` or
`tests` (code defining `check(candidate)`, or plain asserts; a list of asserts is joined),
`entry_point` (the function's name). Optional `limits`: overrides of `sandbox.Limits`.
The program is prompt + completion code + tests, so both a bare function body and a full
definition (which replaces the prompt's) work. Score 1.0 when every test passes, else 0.0.
A completion runs in the same interpreter as its tests and could fake a pass with enough
effort (as in HumanEval's own harness); the sandbox is about containing it, not grading tricks.
"""

from __future__ import annotations

import re

from workbench.verify.registry import Verdict
from workbench.verify.sandbox import Limits, run_python

VERSION = "1"
CODE_BLOCK = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)


def extract_code(completion: str) -> str:
    """The last fenced code block of the answer (after </think>), else the answer itself."""
    end = completion.rfind("</think>")
    answer = completion[end + len("</think>"):] if end >= 0 else completion
    blocks = CODE_BLOCK.findall(answer)
    return blocks[-1] if blocks else answer


def build_program(code: str, example: dict) -> str:
    tests = example.get("test", example.get("tests", ""))
    if isinstance(tests, list):
        tests = "\n".join(str(t) for t in tests)
    entry = example.get("entry_point")
    program = f"{example.get('prompt', '')}{code}\n\n{tests}\n"
    if entry and re.search(r"^def check\(", str(tests), re.MULTILINE):
        program += f"\ncheck({entry})\n"
    return program


def verify(completion: str, example: dict) -> Verdict:
    if not (example.get("test") or example.get("tests")):
        return Verdict(None, "example has no tests")
    code = extract_code(completion)
    if not code.strip():
        return Verdict(0.0, "no code found")
    entry = example.get("entry_point")
    if entry is not None and not re.fullmatch(r"[A-Za-z_]\w*", str(entry)):
        return Verdict(None, f"entry_point {str(entry)[:40]!r} is not a Python name")
    result = run_python(build_program(code, example), Limits.from_dict(example.get("limits") or {}))
    summary = code.strip().splitlines()[0][:80] if code.strip() else ""
    return Verdict(1.0 if result.passed else 0.0, "all tests passed" if result.passed else result.reason, summary)
