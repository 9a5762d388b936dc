"""Model output is untrusted: show control characters, never send them to the terminal. Pure Python.

Rich markup (`[bold]`, `[@click=app.quit]`) is handled by never passing model text through a markup
parser (the widgets build Text/Content objects); this module handles what a parser cannot:
ANSI/OSC escape sequences and other control characters, replaced by visible stand-ins.
"""

from __future__ import annotations

# C0 controls become their Unicode "control pictures" (ESC -> ␛), DEL -> ␡, C1 controls -> \x9b.
_TABLE = {c: chr(0x2400 + c) for c in range(32) if c not in (9, 10)}
_TABLE[0x7F] = "␡"
_TABLE.update({c: f"\\x{c:02x}" for c in range(0x80, 0xA0)})
_TABLE[9] = "    "


def clean(text: str) -> str:
    """`text` with every control character except newline shown as a visible stand-in."""
    return text.replace("\r\n", "\n").translate(_TABLE)
