"""A verifier worker process: `python -m workbench.verify.worker`, driven by `pool.VerifierPool`.

Protocol: after its imports it writes {"ready": true}; then for each request line
{"verifier", "completion", "example", "timeout"} it writes one verdict line. Killed on timeout;
the code sandbox's wall clock ends a little before it (one deadline: the pool's).
"""

from __future__ import annotations

import json
import signal
import sys


def limit_memory(megabytes: int) -> None:
    try:
        import resource

        limit = megabytes * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, ValueError, OSError):
        pass  # not enforceable here (macOS refuses RLIMIT_AS): the timeout still holds


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's business
    if len(sys.argv) > 1 and int(sys.argv[1]) > 0:
        limit_memory(int(sys.argv[1]))
    from workbench.verify import math_answer
    from workbench.verify.registry import run_verifier
    from workbench.verify.sandbox import set_deadline

    math_answer.warm_up()  # pay sympy's import and the LaTeX parser's start before saying ready, not inside a timeout
    out = sys.stdout
    out.write('{"ready": true}\n')
    out.flush()
    for line in sys.stdin:
        try:
            request = json.loads(line)
            timeout = request.get("timeout")
            if isinstance(timeout, (int, float)) and timeout > 0:
                set_deadline(timeout - min(1.0, 0.1 * timeout))
            verdict = run_verifier(request["verifier"], request["completion"], request["example"]).to_dict()
        except (ValueError, KeyError, TypeError) as e:
            verdict = {"score": None, "reason": f"bad request: {e}"[:200], "extracted": None}
        out.write(json.dumps(verdict) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
