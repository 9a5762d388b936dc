"""Reflection markers in thinking: "wait", "hmm", "let me check", "alternatively", "But", re-computations.

`MarkerScanner` finds them as text streams in: it scans only up to the last word boundary and keeps
a little context, so a marker split across deltas ("Wa" + "it") is found once, at its place.
"""

from __future__ import annotations

import re

KINDS = ("wait", "hmm", "check", "alternatively", "but", "recompute")
PATTERN = re.compile(
    r"(?P<wait>(?i:\bwait\b)|等等|等一下)"
    r"|(?P<hmm>(?i:\bhm+\b)|嗯)"
    r"|(?P<check>(?i:\blet(?:'s| me| us) (?:double[- ]?)?(?:check|verify|confirm)\b|\bdouble[- ]?check\b))"
    r"|(?P<alternatively>(?i:\balternatively\b))"
    r"|(?P<but>\bBut\b)"  # sentence-initial "But" (capitalised); "but" inside sentences is just grammar
    r"|(?P<recompute>(?i:\bre-?(?:comput|calculat|evaluat)\w*|\bredo\b|\b(?:compute|calculate|check) (?:(?:it|this|that) )?again\b))"
)
CONTEXT = 40  # chars kept before the scan point: longer than any marker
MAX_HELD = 400  # scripts without spaces: do not hold text back forever


def find_markers(text: str) -> list[tuple[int, int, str]]:
    """(start, end, kind) of every marker in `text`."""
    return [(m.start(), m.end(), m.lastgroup) for m in PATTERN.finditer(text)]


class MarkerScanner:
    def __init__(self) -> None:
        self.markers: list[tuple[int, int, str]] = []
        self._buf = ""  # text from absolute position self._offset on
        self._offset = 0
        self._scanned = 0  # absolute position up to which matches are final

    def feed(self, text: str) -> list[tuple[int, int, str]]:
        """New markers completed by this delta. Only the delta is searched for a word boundary, and
        at most MAX_HELD characters are held back, so each delta costs its own length."""
        start = len(self._buf)
        self._buf += text
        boundary = _word_boundary(text)
        cut = start + boundary if boundary >= 0 else -1
        if cut < 0 and len(self._buf) - (self._scanned - self._offset) > MAX_HELD:
            cut = len(self._buf) - CONTEXT
        if cut <= self._scanned - self._offset:
            return []
        return self._scan(cut)

    def finish(self) -> list[tuple[int, int, str]]:
        return self._scan(len(self._buf))

    def _scan(self, cut: int) -> list[tuple[int, int, str]]:
        new = []
        last_end = self.markers[-1][1] if self.markers else 0
        for start, end, kind in find_markers(self._buf[:cut]):
            start, end = start + self._offset, end + self._offset
            if end > self._scanned and start >= last_end:
                new.append((start, end, kind))
                last_end = end
        self.markers += new
        self._scanned = self._offset + cut
        drop = max(0, cut - CONTEXT)
        self._buf, self._offset = self._buf[drop:], self._offset + drop
        return new


_LAST_NON_WORD = re.compile(r"(?s:.*)[^\w'\-]")  # greedy: backs up from the end to the last one


def _word_boundary(text: str) -> int:
    """Index of the last character that cannot be inside a word (-1: none)."""
    m = _LAST_NON_WORD.match(text)
    return m.end() - 1 if m else -1


def counts(markers) -> dict[str, int]:
    out = {k: 0 for k in KINDS}
    for _, _, kind in markers:
        out[kind] += 1
    return out
