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
        self._partial = ""  # a word or paragraph still being written
        self._para = ""
        self._pos = 0

    @property
    def loop(self) -> bool:
        return self.loop_at is not None

    def feed(self, text: str) -> None:
        self._pos += len(text)
        # words: hold back a trailing partial word
        buf = self._partial + text
        m = re.search(r"\w+$", buf)
        self._partial = m.group(0) if m else ""
        self._words(buf[: len(buf) - len(self._partial)])
        # paragraphs
        self._para += text
        if "\n" in text:  # only then can a paragraph have ended (keeps long unbroken text cheap)
            *done, self._para = re.split(r"\n\s*\n", self._para)
            for p in done:
                self._paragraph(p)

    def finish(self) -> None:
        self._words(self._partial)
        self._partial = ""
        self._paragraph(self._para)
        self._para = ""

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
