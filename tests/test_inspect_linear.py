"""Inspection work grows linearly with the text, whatever its shape (no word breaks, one long
paragraph, many markers): counted, not timed. Doubling the input must about double the work."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings, strategies as st

from workbench.inspect import Inspector, inspect_text
from workbench.inspect import loops, markers, steps
from workbench.inspect.loops import LoopDetector
from workbench.inspect.markers import MarkerScanner, find_markers


class Counted:
    """A compiled pattern that adds up how many characters it is asked to scan."""

    def __init__(self, pattern: re.Pattern, counter: list) -> None:
        self.pattern, self.counter = pattern, counter

    def __getattr__(self, name):
        method = getattr(self.pattern, name)

        def counted(string, pos=0, *args, **kw):
            self.counter[0] += len(string) - (pos if isinstance(pos, int) else 0)
            return method(string, pos, *args, **kw)
        return counted


class CountedStr(str):
    """A text that adds up the characters every slice or index of it takes."""

    counter = [0]

    def __getitem__(self, key):
        part = str.__getitem__(self, key)
        CountedStr.counter[0] += max(1, len(part))
        return part


def scanner_work(monkeypatch, delta: str, n: int) -> int:
    """Characters scanned (patterns of the incremental scanners) and held back (their buffers),
    summed over every delta, for `n` deltas of `delta`."""
    counter = [0]
    for module in (markers, loops):
        for name, value in vars(module).copy().items():
            if isinstance(value, re.Pattern):
                monkeypatch.setattr(module, name, Counted(value, counter))
    inspector = Inspector("q")
    held = 0
    for _ in range(n):
        inspector.feed_thinking(delta)
        held += sum(len(b) for b in (inspector.markers._buf, inspector.loops._partial, inspector.loops._para)
                    if isinstance(b, str))  # a string buffer is copied on each append: work
    monkeypatch.undo()
    return counter[0] + held


@pytest.mark.parametrize("delta", ["7", "t ", "Wait", "\n", "x\n\n"])
def test_streamed_inspection_work_is_linear_in_the_number_of_deltas(monkeypatch, delta):
    """40,000 deltas of "7" (no word break ever) used to cost 8 times "t " (held text rescanned)."""
    small, large = scanner_work(monkeypatch, delta, 4000), scanner_work(monkeypatch, delta, 8000)
    assert large <= 2.2 * small, (small, large)


def test_the_text_the_marker_scanner_holds_back_stays_bounded():
    """After one word break, a run without breaks was held (and searched backwards) whole."""
    scanner = MarkerScanner()
    for delta in ["a ", *["7"] * 20000]:
        scanner.feed(delta)
    assert len(scanner._buf) <= markers.MAX_HELD + markers.CONTEXT + 1


def steps_work(n: int) -> int:
    text = CountedStr("x. Wait " * n)
    CountedStr.counter[0] = 0
    segment_steps_result = steps.segment_steps(text, find_markers(str(text)))
    assert len(segment_steps_result) == n + 1
    return CountedStr.counter[0]


def test_steps_work_is_linear_in_the_markers():
    """`_opens_sentence` copied and stripped the whole text before each marker: 1 MB took 5 s, 2 MB 22 s."""
    small, large = steps_work(2000), steps_work(4000)
    assert large <= 2.2 * small, (small, large)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["Wait", ",", " ", "\n", "\n\n", "7", "But", "hmm", ".", "再", "let me check"]),
                max_size=60), st.data())
def test_streamed_scanners_equal_the_whole_text_in_any_pieces(words, data):
    text = "".join(words)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=8)))
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)])]
    whole, streamed = LoopDetector(), LoopDetector()
    whole.feed(text)
    scanner = MarkerScanner()
    for p in pieces:
        streamed.feed(p)
        scanner.feed(p)
    whole.finish()
    streamed.finish()
    scanner.finish()
    assert whole.report() == streamed.report() and whole.paragraphs == streamed.paragraphs
    assert scanner.markers == find_markers(text)
    assert steps.segment_steps(text) == steps.segment_steps(text, find_markers(text))


def test_a_huge_number_in_the_thinking_is_no_crash():
    """100,000 digits: int() refuses more than 4,300, and the save failed with a traceback."""
    report = inspect_text("q", "7" * 100_000, "42")
    assert report["consistency"]["final_answer"] == "42" and report["consistency"]["consistent"] is not True
