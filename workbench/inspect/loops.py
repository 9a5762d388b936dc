"""Repetition loops: repeated word n-grams and paragraphs, and whether the text is stuck in a loop.

Stuck means: over the last WINDOW n-grams, nearly all had already been seen at least twice, i.e.
the model has been writing the same thing a third time (or more) for a long stretch. Normal
thinking repeats phrases ("so the answer is"), not whole runs of text.
"""

from __future__ import annotations

import re
from collections import deque

WORD = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]|\w+")  # CJK one char per word
N = 8  # words per n-gram
WINDOW = 48  # n-grams in the sliding window
STUCK_SHARE = 0.9  # share of the window that repeats (3rd+ time) to call it a loop
MIN_PARAGRAPH = 20  # chars; shorter paragraphs ("Wait.") may repeat legitimately
PARAGRAPH_LOOP = 3  # the same paragraph this many times is a loop
PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_LAST_NON_WORD = re.compile(r"(?s:.*)\W")  # greedy: backs up from the end to the last non-word character


class LoopDetector:
    def __init__(self) -> None:
        self.seen: dict[int, int] = {}  # n-gram hash -> occurrences
        self.words: deque = deque(maxlen=N)
        self.window: deque = deque(maxlen=WINDOW)
        self.repeats_in_window = 0
        self.repeated_ngrams = 0  # distinct n-grams seen 3+ times
        self.paragraphs: dict[str, int] = {}
        self.duplicate_paragraphs = 0  # paragraphs written again (2nd+ time)
        self.loop_at: int | None = None  # character offset where the loop was detected
        self._partial: list[str] = []  # the word still being written, in pieces (joined once, when it ends)
        self._para: list[str] = []  # the paragraph still being written, in pieces
        self._newlines = 0  # newlines in the whitespace that ends the text so far (2: a paragraph break)
        self._pos = 0

    @property
    def loop(self) -> bool:
        return self.loop_at is not None

    def feed(self, text: str) -> None:
        """Each delta costs its own length: only the delta is searched, held text is never rescanned."""
        self._pos += len(text)
        # words: hold back a trailing partial word
        m = _LAST_NON_WORD.match(text)
        if m is None:  # the word goes on
            self._partial.append(text)
        else:
            self._words("".join(self._partial) + text[:m.end()])
            self._partial = [text[m.end():]]
        self._paragraphs(text)

    def _paragraphs(self, text: str) -> None:
        """Paragraphs end at whitespace holding two newlines (`\\n\\s*\\n`), as soon as the second arrives."""
        body = text.lstrip()
        lead = text[:len(text) - len(body)]
        self._para.append(lead)
        self._newlines += lead.count("\n")
        if self._newlines >= 2:
            self._end_paragraph()
        if not body:
            return
        *done, last = PARAGRAPH_BREAK.split(body)
        for p in done:
            self._para.append(p)
            self._end_paragraph()
        self._para.append(last)
        self._newlines = last.count("\n", len(last.rstrip()))

    def _end_paragraph(self) -> None:
        self._paragraph("".join(self._para))
        self._para = []

    def finish(self) -> None:
        self._words("".join(self._partial))
        self._partial = []
        self._end_paragraph()

    def _words(self, text: str) -> None:
        for w in WORD.findall(text):
            self.words.append(w.lower())
            if len(self.words) < N:
                continue
            h = hash(tuple(self.words))
            n = self.seen.get(h, 0) + 1
            self.seen[h] = n
            if n == 3:
                self.repeated_ngrams += 1
            repeat = n >= 3
            if len(self.window) == WINDOW:
                self.repeats_in_window -= self.window[0]
            self.window.append(repeat)
            self.repeats_in_window += repeat
            if (self.loop_at is None and len(self.window) == WINDOW
                    and self.repeats_in_window >= STUCK_SHARE * WINDOW):
                self.loop_at = self._pos

    def _paragraph(self, p: str) -> None:
        key = " ".join(p.lower().split())
        if len(key) < MIN_PARAGRAPH:
            return
        n = self.paragraphs.get(key, 0) + 1
        self.paragraphs[key] = n
        if n >= 2:
            self.duplicate_paragraphs += 1
        if n >= PARAGRAPH_LOOP and self.loop_at is None:
            self.loop_at = self._pos

    def report(self) -> dict:
        return {"repeated_ngrams": self.repeated_ngrams, "duplicate_paragraphs": self.duplicate_paragraphs,
                "loop": self.loop, "loop_at": self.loop_at}
