"""The verifier registry and the one calling convention: `verifier(completion, example) -> Verdict`.

Verifier modules are imported only when first asked for (math pulls in sympy), so listing
names and validating `--verifier` stays cheap.
"""

from __future__ import annotations

import importlib
from dataclasses import asdict, dataclass
from typing import Callable

from workbench.errors import UserError


@dataclass(frozen=True)
class Verdict:
    """score in [0, 1], or None for "cannot judge" (no gold answer, timeout, crashed verifier)."""

    score: float | None
    reason: str  # short, one line
    extracted: str | None = None  # what the verifier judged (e.g. the final answer), for reports
    details: dict | None = None  # how it was decided, when the example asks (`"explain": true`)

    @property
    def correct(self) -> bool:
        return self.score is not None and self.score >= 1.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Verdict":
        details = d.get("details")
        return cls(d.get("score"), str(d.get("reason", "")), d.get("extracted"),
                   details if isinstance(details, dict) else None)


# name -> (module defining `verify(completion, example)` and `VERSION`, default timeout in seconds).
VERIFIERS: dict[str, tuple[str, float]] = {
    "math": ("workbench.verify.math_answer", 5.0),
    "format": ("workbench.verify.think_format", 2.0),
    "format_partial": ("workbench.verify.think_format", 2.0),
    "language": ("workbench.verify.language", 2.0),
    "code": ("workbench.verify.code_tests", 30.0),
    "countdown": ("workbench.verify.countdown", 2.0),
}


def check_name(name: str) -> str:
    if name not in VERIFIERS:
        raise UserError(f"unknown verifier {name!r}; choose one of: {', '.join(VERIFIERS)}")
    return name


def check_available(name: str) -> str:
    """UserError (one line) when this machine cannot run the verifier: `code` without its sandbox."""
    if check_name(name) == "code":
        from workbench.verify.sandbox import SandboxUnavailable, isolation

        try:
            isolation()
        except SandboxUnavailable as e:
            raise UserError(str(e)) from None
    return name


def get_verifier(name: str) -> Callable[[str, dict], Verdict]:
    module = importlib.import_module(VERIFIERS[check_name(name)][0])
    return getattr(module, "verify_partial" if name == "format_partial" else "verify")


def verifier_version(name: str) -> str:
    return f"{name}/{importlib.import_module(VERIFIERS[check_name(name)][0]).VERSION}"


def default_timeout(name: str) -> float:
    return VERIFIERS[check_name(name)][1]


def run_verifier(name: str, completion, example) -> Verdict:
    """Call a verifier in this process, turning bad input and verifier crashes into verdicts."""
    if not isinstance(completion, str):
        return Verdict(None, "completion is not a string")
    if not isinstance(example, dict):
        return Verdict(None, "example is not an object")
    try:
        verdict = get_verifier(name)(completion, example)
    except RecursionError:
        return Verdict(None, "input nested too deeply")
    except MemoryError:
        return Verdict(None, "verifier ran out of memory")
    except Exception as e:  # noqa: BLE001 - hostile input must never crash a batch
        return Verdict(None, f"verifier error: {type(e).__name__}: {str(e)[:200]}".splitlines()[0])
    return verdict
