"""workbench.terminal: the one function that makes untrusted text safe to show (and to encode)."""

from __future__ import annotations

import subprocess

from hypothesis import given, strategies as st

from workbench.terminal import encodable, printable

HOSTILE = ("\x1b]0;pwned\x07 \x1b[2J \x1b]52;c;aGk=\x07 \x9b2J \x90dcs\x9c \x00\x7f \u202eevil\u202c "
           "\u2066iso\u2069 \u200e\u200f\u061c \ud800 \udfff")


def test_controls_bidi_and_surrogates_are_shown_as_escapes():
    shown = printable(HOSTILE)
    assert shown == ("\\x1b]0;pwned\\x07 \\x1b[2J \\x1b]52;c;aGk=\\x07 \\x9b2J \\x90dcs\\x9c \\x00\\x7f "
                     "\\u202eevil\\u202c \\u2066iso\\u2069 \\u200e\\u200f\\u061c \\ud800 \\udfff")
    shown.encode("utf-8")  # nothing left that cannot be written


def test_ordinary_text_passes_as_written():
    text = "Wait, 12+30 = 42.\n\tSo x² ≤ ½ · 日本語 · עברית · 👍🏽 · a\u200db\n"
    assert printable(text) == text
    assert printable("a\tb", tab="    ") == "a    b"
    assert printable("a\r\nb\rc") == "a\nb\\x0dc"


@given(st.text())
def test_nothing_unsafe_survives(text):
    shown = printable(text)
    assert not any(ord(c) < 32 and c not in "\n\t" or 0x7F <= ord(c) < 0xA0 or 0x202A <= ord(c) <= 0x202E
                   or 0x2066 <= ord(c) <= 0x2069 or c in "\u200e\u200f\u061c" or 0xD800 <= ord(c) < 0xE000
                   for c in shown)
    shown.encode("utf-8")


@given(st.text())
def test_encodable_keeps_length_and_encodes(text):
    out = encodable(text + "\ud800")
    assert len(out) == len(text) + 1 and out.endswith("\ufffd")
    out.encode("utf-8")


def test_one_function_for_the_whole_project():
    """No other module keeps its own copy of the escaping (grep for the old helpers)."""
    out = subprocess.run(["grep", "-rnE", r"def (safe_text|_safe)\(|def clean\(text|tui\.safe|isprintable\(\) else",
                          "workbench", "--include=*.py"], capture_output=True, text=True,
                         cwd=__import__("pathlib").Path(__file__).parent.parent)
    assert out.stdout == ""
