"""Language mixing (shared by the language verifier and inspection): the share of thinking letters written in another script than the prompt's.

R1-Zero's known failure is drifting into another language mid-thought. Letters are classed by
Unicode script; Greek counts as neutral (math: π, θ) unless the prompt itself is Greek.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

FLAG_SHARE = 0.05  # flagged at >= 5% of letters ...
FLAG_MIN_LETTERS = 10  # ... and at least this many
JAPANESE = {"HIRAGANA", "KATAKANA"}


@lru_cache(maxsize=8192)
def script_of(ch: str) -> str | None:
    """'LATIN', 'CJK', 'CYRILLIC', ... for letters; None for everything else."""
    if not ch.isalpha():
        return None
    name = unicodedata.name(ch, "")
    word = name.split(" ", 1)[0] if name else "OTHER"
    if word in JAPANESE or word == "CJK":
        return "CJK"  # Chinese and Japanese share ideographs: one class
    return word


class ScriptCounter:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def feed(self, text: str) -> None:
        for ch in text:
            s = script_of(ch)
            if s is not None:
                self.counts[s] = self.counts.get(s, 0) + 1


def dominant_script(text: str) -> str:
    c = ScriptCounter()
    c.feed(text)
    return max(c.counts, key=c.counts.get) if c.counts else "LATIN"


def mixing_report(prompt_script: str, counts: dict[str, int]) -> dict:
    neutral = {prompt_script} | ({"GREEK"} if prompt_script != "GREEK" else set())
    counted = {s: n for s, n in counts.items() if s == prompt_script or s not in neutral}
    total = sum(counted.values())
    other = {s: n for s, n in counted.items() if s != prompt_script}
    other_letters = sum(other.values())
    share = other_letters / total if total else 0.0
    return {"prompt_script": prompt_script, "other_scripts": other, "other_share": round(share, 4),
            "flagged": share >= FLAG_SHARE and other_letters >= FLAG_MIN_LETTERS}
