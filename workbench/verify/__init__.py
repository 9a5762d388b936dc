"""Verifiers: deterministic programs that score a completion against an example.

Pure Python: never imports mlx, mlx_lm or textual. One calling convention for all:

    from workbench.verify import get_verifier, verify_with_timeout, VerifierPool
    verdict = get_verifier("math")(completion, {"answer": "42"})      # in this thread, no timeout
    verdict = verify_with_timeout("math", completion, {"answer": "42"})  # any thread, hard timeout
    with VerifierPool() as pool:
        verdicts = pool.map("math", [(completion, example), ...])      # a batch, in worker processes

The one answer extractor (no sympy; the app, inspect and eval use it too):

    thinking, answer, closed = split_thinking(completion, opened=True)   # on the last </think>
    extract_answer(answer).text                                          # boxed, "answer is", sole expression

Model output is untrusted: use the pool (or verify_with_timeout) for it, never a bare call on
the main thread of a long-lived program: a sympy bomb like 10^{10^{10}} can only be stopped by
killing the process that evaluates it.
"""

from workbench.verify.answer import Extracted, extract_answer, final_answer, split_thinking

# The pool and the registry (worker processes, the sandbox, subprocess, logging) load when first used:
# the answer extractor alone is imported by every response's inspection (`workbench run` included).
_LAZY = {"VerifierPool": "pool", "verify_with_timeout": "pool", "VERIFIERS": "registry", "Verdict": "registry",
         "default_timeout": "registry", "get_verifier": "registry", "run_verifier": "registry",
         "verifier_version": "registry"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"workbench.verify.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["VERIFIERS", "Extracted", "Verdict", "VerifierPool", "default_timeout", "extract_answer", "final_answer",
           "get_verifier", "run_verifier", "split_thinking", "verifier_version", "verify_with_timeout"]
