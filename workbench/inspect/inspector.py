"""The inspector: every chain-of-thought metric for one response, updated as deltas arrive.

Per delta it does only cheap incremental work (markers, script counts, loop detection); token
counts, steps and answer consistency are computed from the whole text in `report()`.
`inspect_text` is the same for a finished (or stored, or imported) response.
"""

from __future__ import annotations

from workbench.inspect import consistency as consistency_
from workbench.verify.script_mix import ScriptCounter, dominant_script, mixing_report
from workbench.inspect.loops import LoopDetector
from workbench.inspect.markers import MarkerScanner, counts
from workbench.inspect.steps import segment_steps
from workbench.inspect.tokens import CostSettings, costs, with_o200k


class Inspector:
    def __init__(self, prompt: str = "", count_tokens=None, cost_settings: CostSettings | None = None,
                 verifier=None) -> None:
        self.prompt_script = dominant_script(prompt)
        self.count_tokens = count_tokens  # the model's tokenizer, str -> int (None: use the stats)
        self.cost_settings = cost_settings
        self.verifier = verifier
        self.markers = MarkerScanner()
        self.scripts = ScriptCounter()
        self.loops = LoopDetector()
        self.thinking: list[str] = []
        self.answer: list[str] = []
        self.finished = False

    @property
    def loop(self) -> bool:
        return self.loops.loop

    def feed_thinking(self, text: str) -> None:
        assert not self.finished, "report() was called: the inspector is finished"
        self.thinking.append(text)
        self.markers.feed(text)
        self.scripts.feed(text)
        self.loops.feed(text)

    def feed_answer(self, text: str) -> None:
        self.answer.append(text)

    def report(self, stats=None, load_o200k: bool = True) -> dict:
        """All metrics as a JSON-able dict, at the end. `stats`: the response's `Stats` (model token counts, time).
        `load_o200k=False`: o200k_base counts only if the table is loaded (else None: `tokens.with_o200k`).

        While streaming, `self.markers.markers` and `self.loop` are live; a full report of a partial
        text is `inspect_text(...)`."""
        if not self.finished:  # flush what the scanners held back; later deltas are not accepted
            self.markers.finish()
            self.loops.finish()
            self.finished = True
        thinking, answer = "".join(self.thinking), "".join(self.answer)
        markers = self.markers.markers
        return {
            "tokens": self._tokens(thinking, answer, stats, load_o200k),
            "markers": {"counts": counts(markers), "total": len(markers), "positions": [list(m) for m in markers]},
            "steps": segment_steps(thinking, markers),
            "language": mixing_report(self.prompt_script, self.scripts.counts),
            "loops": self.loops.report(),
            "consistency": consistency_.consistency(thinking, answer, self.verifier),
        }

    def _tokens(self, thinking: str, answer: str, stats, load_o200k: bool) -> dict:
        if stats is not None and (stats.thinking_tokens or stats.answer_tokens):
            t, a = stats.thinking_tokens, stats.answer_tokens
        elif self.count_tokens is not None:
            t, a = self.count_tokens(thinking), self.count_tokens(answer)
        else:
            t = a = None
        settings = self.cost_settings or CostSettings.load()
        seconds = (stats.thinking_time + stats.answer_time) if stats is not None else 0.0
        # billed by the model's tokens until the o200k_base counts (closer to a hosted API's) replace them
        out = {"thinking": t, "answer": a, "thinking_o200k": None, "answer_o200k": None,
               "thinking_share": _share(t, a), "note": None, "cost": costs((t or 0) + (a or 0), seconds, settings)}
        with_o200k(out, thinking, answer, settings, load=load_o200k)
        return out


def _share(t, a) -> float | None:
    if t is None or a is None:
        return None
    return round(t / (t + a), 4) if t + a else 0.0


def inspect_text(prompt: str, thinking: str, answer: str, stats=None, count_tokens=None,
                 cost_settings: CostSettings | None = None, verifier=None) -> dict:
    inspector = Inspector(prompt, count_tokens, cost_settings, verifier)
    inspector.feed_thinking(thinking)
    inspector.feed_answer(answer)
    return inspector.report(stats)
