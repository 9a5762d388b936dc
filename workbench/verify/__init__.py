"""Verifiers: deterministic programs that score a completion against an example.

Pure Python: never imports mlx, mlx_lm or textual. One calling convention for all:

    from workbench.verify import get_verifier, verify_with_timeout, VerifierPool
    verdict = get_verifier("math")(completion, {"answer": "42"})      # in this thread, no timeout
    verdict = verify_with_timeout("math", completion, {"answer": "42"})  # any thread, hard timeout
    with VerifierPool() as pool:
        verdicts = pool.map("math", [(completion, example), ...])      # a batch, in worker processes

Model output is untrusted: use the pool (or verify_with_timeout) for it, never a bare call on
the main thread of a long-lived program: a sympy bomb like 10^{10^{10}} can only be stopped by
killing the process that evaluates it.
"""

from workbench.verify.pool import VerifierPool, verify_with_timeout
from workbench.verify.registry import VERIFIERS, Verdict, default_timeout, get_verifier, run_verifier, verifier_version

__all__ = ["VERIFIERS", "Verdict", "VerifierPool", "default_timeout", "get_verifier", "run_verifier",
           "verifier_version", "verify_with_timeout"]
