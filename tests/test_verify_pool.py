"""Verifiers behind a hard timeout: worker processes, any thread, bombs and bad input contained."""

from __future__ import annotations

import threading

import pytest

from workbench.errors import UserError
from workbench.verify import VERIFIERS, Verdict, VerifierPool, get_verifier, run_verifier, verify_with_timeout
from workbench.verify.bombs import EXPRESSION_BOMBS as BOMBS
from workbench.verify.registry import verifier_version



@pytest.fixture(scope="module")
def pool():
    with VerifierPool(workers=2) as pool:
        yield pool


def test_registry_names_and_versions():
    assert {"math", "format", "language", "code", "countdown"} <= set(VERIFIERS)
    assert verifier_version("math").startswith("math/")
    with pytest.raises(UserError, match="unknown verifier"):
        get_verifier("nope")


def test_bombs_return_a_verdict_within_the_timeout(pool):
    verdicts = pool.map("math", [(bomb, {"answer": "5"}) for bomb in BOMBS], timeout=1)
    assert len(verdicts) == len(BOMBS)
    for bomb, verdict in zip(BOMBS, verdicts):
        assert isinstance(verdict, Verdict)
        assert verdict.score in (None, 0.0), (bomb[:40], verdict)
    # the pool still works after killing workers
    assert pool.verify("math", "\\boxed{5}", {"answer": "5"}).score == 1.0


def test_timeout_kills_and_replaces_the_worker(pool):
    verdict = pool.verify("math", "\\boxed{10^{10^{10}}}", {"answer": "5"}, timeout=0.5)
    assert verdict.score is None and "timed out" in verdict.reason
    assert pool.map("math", [("\\boxed{1}", {"answer": "1"})] * 4) == [Verdict(1.0, "matches the gold answer (number)", "1")] * 4


def test_map_keeps_input_order(pool):
    items = [(f"\\boxed{{{i}}}", {"answer": str(i if i % 3 else i + 1)}) for i in range(12)]
    scores = [v.score for v in pool.map("math", items)]
    assert scores == [0.0 if i % 3 == 0 else 1.0 for i in range(12)]


def test_works_off_the_main_thread():
    results = []

    def worker():
        results.append(verify_with_timeout("math", "\\boxed{\\frac{1}{2}}", {"answer": "0.5"}))
        results.append(verify_with_timeout("math", "\\boxed{10^{10^{10}}}", {"answer": "5"}, timeout=0.5))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(str(v.score) for v in results) == ["1.0"] * 2 + ["None"] * 2


def test_bad_input_becomes_a_verdict(pool):
    assert pool.verify("math", 5, {"answer": "5"}).score is None  # not a string
    assert pool.verify("math", "\\boxed{5}", "not a dict").score is None
    assert "not JSON" in pool.verify("math", "\\boxed{5}", {"answer": object()}).reason
    assert run_verifier("math", "\\boxed{5}", {"answer": {"weird": 1}}).score in (None, 0.0)
