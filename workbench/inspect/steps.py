"""Split thinking into steps: paragraphs, and a new step where a reflection marker opens a sentence."""

from __future__ import annotations

import re

from workbench.inspect.markers import find_markers

PARAGRAPH = re.compile(r"\n\s*\n")
STEP_MARKERS = ("wait", "hmm", "check", "alternatively", "but")
TITLE_CHARS = 72


def segment_steps(thinking: str, markers=None) -> list[dict]:
    """[{start, end, marker, title}] covering the non-blank text of `thinking`, in order."""
    markers = find_markers(thinking) if markers is None else markers
    cuts = {0}
    for m in PARAGRAPH.finditer(thinking):
        cuts.add(m.end())
    for start, _, kind in markers:
        if kind in STEP_MARKERS and _opens_sentence(thinking, start):
            cuts.add(start)
    kind_at = {start: kind for start, _, kind in markers}
    edges = sorted(cuts) + [len(thinking)]
    steps = []
    for a, b in zip(edges, edges[1:]):
        chunk = thinking[a:b]
        if not chunk.strip():
            continue
        start = a + len(chunk) - len(chunk.lstrip())
        end = a + len(chunk.rstrip())
        title = " ".join(thinking[start:end].split())
        steps.append({"start": start, "end": end, "marker": kind_at.get(start),
                      "title": title if len(title) <= TITLE_CHARS else title[: TITLE_CHARS - 1] + "…"})
    return steps


def _opens_sentence(text: str, i: int) -> bool:
    """Is text[i] the first thing after a sentence end (or the start)? Looks back over spaces only:
    each marker costs the blank run before it, not the text before it."""
    while i > 0 and text[i - 1] in " \t":
        i -= 1
    return i == 0 or text[i - 1] in ".!?:\n。！？"
