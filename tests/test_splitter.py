"""The streaming reasoning splitter: table of model behaviours, then arbitrary splits (hypothesis)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.engine.events import merge_deltas
from workbench.engine.splitter import ReasoningSplitter


def split(chunks, opened=False):
    s = ReasoningSplitter(start_in_thinking=opened)
    out = []
    for c in chunks:
        out += s.feed(c)
    out += s.finish()
    return [(type(e).__name__, e.text) for e in merge_deltas(out)], s.closed


CASES = [
    # (text, prompt opened <think>, expected events, thinking closed)
    ("<think>\nhmm 2+2</think>\n\nThe answer is 4", False, [("Think", "hmm 2+2"), ("Answer", "The answer is 4")], True),
    ("hmm 2+2</think>\n\n4", True, [("Think", "hmm 2+2"), ("Answer", "4")], True),
    ("<think>\nredundant tag</think>ok", True, [("Think", "redundant tag"), ("Answer", "ok")], True),
    ("Just 4, no thinking", False, [("Answer", "Just 4, no thinking")], False),
    ("<think>\n\n</think>\n\nbypass", False, [("Answer", "bypass")], True),
    ("\n\n</think>\n\nbypass", True, [("Answer", "bypass")], True),
    ("cut off by max tok", True, [("Think", "cut off by max tok")], False),
    ("<think>a</think>b<think>c</think>d", False,
     [("Think", "a"), ("Answer", "b"), ("Think", "c"), ("Answer", "d")], True),
    ("ends in a partial tag </thi", True, [("Think", "ends in a partial tag </thi")], False),
    ("<thinking is not a tag", False, [("Answer", "<thinking is not a tag")], False),
    ("answer with a stray </think> tag", False, [("Answer", "answer with a stray  tag")], False),
    ("", True, [], False),
    ("x < y and </ is fine</think>yes", True, [("Think", "x < y and </ is fine"), ("Answer", "yes")], True),
]


@pytest.mark.parametrize("text,opened,expected,closed", CASES)
def test_model_behaviours(text, opened, expected, closed):
    assert split([text], opened) == (expected, closed)


@pytest.mark.parametrize("text,opened,expected,closed", CASES)
def test_one_character_at_a_time(text, opened, expected, closed):
    assert split(list(text), opened) == (expected, closed)


pieces = st.sampled_from(["<think>", "</think>", "<", "/", "think", ">", "\n", " ", "a", "wait", "42", "</", "<th"])


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(pieces, max_size=30), cuts=st.lists(st.integers(0, 200), max_size=10), opened=st.booleans())
def test_any_split_gives_the_same_events(parts, cuts, opened):
    text = "".join(parts)
    bounds = sorted({min(c, len(text)) for c in cuts} | {0, len(text)})
    chunks = [text[a:b] for a, b in zip(bounds, bounds[1:])]
    assert split(chunks, opened) == split([text], opened)


@settings(max_examples=200, deadline=None)
@given(thinking=st.text(st.characters(blacklist_characters="<>"), max_size=40),
       answer=st.text(st.characters(blacklist_characters="<>"), max_size=40))
def test_text_is_preserved_around_the_tags(thinking, answer):
    events, closed = split(list(f"{thinking}</think>{answer}"), opened=True)
    got = {kind: text for kind, text in events}
    assert closed
    assert got.get("Think", "") == encodable(thinking.lstrip())
    assert got.get("Answer", "") == encodable(answer.lstrip())


def encodable(text: str) -> str:
    """What events carry: a lone surrogate becomes U+FFFD where a delta is made (engine/events.py)."""
    return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)
