"""The language verifier (R1's language-consistency reward): the share of the thinking's letters
written in the prompt's script. 1.0 = no mixing; flagged mixing is named in the reason.

Example fields: `prompt` (its dominant script is the reference) or `script` (e.g. "LATIN",
"CJK", "CYRILLIC"). The thinking is the text before the last </think> (all of it if never closed).
"""

from __future__ import annotations

from workbench.verify.answer import split_thinking
from workbench.verify.registry import Verdict
from workbench.verify.script_mix import ScriptCounter, dominant_script, mixing_report

VERSION = "1"


def verify(completion: str, example: dict) -> Verdict:
    script = example.get("script")
    if not script:
        prompt = example.get("prompt") or example.get("question") or example.get("problem")
        if not isinstance(prompt, str) or not prompt.strip():
            return Verdict(None, "example needs `prompt` or `script`")
        script = dominant_script(prompt)
    script = str(script).upper()
    thinking = split_thinking(completion, opened=True)[0]
    counter = ScriptCounter()
    counter.feed(thinking)
    report = mixing_report(script, counter.counts)
    if not counter.counts:
        return Verdict(None, "no letters in the thinking")
    share = 1.0 - report["other_share"]
    if not report["other_scripts"]:
        return Verdict(1.0, f"all thinking in {script}")
    others = ", ".join(f"{s} {n}" for s, n in sorted(report["other_scripts"].items(), key=lambda kv: -kv[1]))
    flag = "language mixing: " if report["flagged"] else ""
    return Verdict(round(share, 4), f"{flag}{share:.0%} in {script}; other letters: {others}")
