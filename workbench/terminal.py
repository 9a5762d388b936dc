"""Untrusted text (model output, server replies, names from files) made safe to show and to store.

One function for every place text reaches a terminal or a file people open (`run`, `sessions`,
exports, the app's panes): `printable(text)` shows, as `\\x1b`-style escapes, what a terminal
would otherwise obey or use to disguise text:

- C0 control characters except newline and tab (ESC starts ANSI/CSI/OSC sequences: colours, a
  cleared screen, the window title, OSC 52 clipboard writes), DEL and the C1 controls (0x80-0x9f;
  0x9b is a one-byte CSI);
- bidirectional overrides, embeddings, isolates and marks (U+202A-202E, U+2066-2069, U+200E/F,
  U+061C), which reorder what is shown ("Trojan Source");
- lone surrogates, which cannot be encoded (a UTF-8 write would raise).

"\\r\\n" becomes "\\n". Everything else passes, so the text reads as written. Cut text to a width
*after* this (a cut can then split an escape, never leave a sequence open).

`escaped_json(text)` does the same for JSON written with `ensure_ascii=False` (JSONL exports,
`--json` output): those characters become `\\uXXXX` escapes, so the value is unchanged.

`encodable(text)` is the other half: lone surrogates (which JSON may carry, e.g. "\\ud800") become
U+FFFD, keeping the length, so the text can be encoded, stored and sent on.
"""

from __future__ import annotations

import re

_UNSAFE = "\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff"
_SHOWN = re.compile(f"\r\n|[{_UNSAFE}]")
_SHOWN_NO_TAB = re.compile(f"\r\n|[\t{_UNSAFE}]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_UNSAFE_IN_JSON = re.compile(f"[{_UNSAFE}]")  # json.dumps has escaped C0 already; C1, DEL, bidi, surrogates


def _escape(c: str) -> str:
    n = ord(c)
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}"


_ESCAPES = {c: _escape(c) for c in map(chr, range(0xA0)) if _SHOWN.fullmatch(c)}


def printable(text: str, tab: str = "\t") -> str:
    """`text` with control characters, bidi controls and lone surrogates shown as escapes; tabs
    become `tab` (the app's panes draw cells, where a tab has no width: they pass four spaces)."""
    pattern = _SHOWN if tab == "\t" else _SHOWN_NO_TAB
    if text.isascii() and text.isprintable():  # the common case: nothing to do
        return text
    return pattern.sub(lambda m: _replacement(m.group(), tab), text)


def _replacement(s: str, tab: str) -> str:
    if s == "\r\n":
        return "\n"
    if s == "\t":
        return tab
    return _ESCAPES.get(s) or _escape(s)


def escaped_json(text: str) -> str:
    """JSON text (json.dumps with ensure_ascii=False) with the characters `printable` escapes written
    as JSON escapes: the same value, and safe to print or to open in an editor."""
    return _UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def encodable(text: str) -> str:
    """`text` with lone surrogates replaced by U+FFFD (same length): safe to encode as UTF-8."""
    if text.isascii():
        return text
    return _SURROGATE.sub("\ufffd", text)
