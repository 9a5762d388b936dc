"""JSON Lines from files we did not write (imports, suites, completions, logs): one parser for all.

`parse_line` is `json.loads` with bounded nesting: a line of 100,000 brackets is a ValueError with a
one-line reason, never a RecursionError (which would end a command with a traceback). The check is a
C-speed count of brackets, so ordinary lines cost nothing extra. `read_jsonl` numbers the lines of a
file so every problem names `file:line`.
"""

from __future__ import annotations

import json
import os
import re
from itertools import accumulate
from pathlib import Path
from typing import Any, Iterable, Iterator, NamedTuple

from workbench.errors import UserError

MAX_DEPTH = 100  # nesting levels; far above any record we read, far below the interpreter's recursion limit
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')  # a JSON string (linear: no nested repetition)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def parse_line(line: str, allow_nan: bool = True) -> Any:
    """One JSON value; a ValueError (one line) for malformed text, nesting deeper than MAX_DEPTH,
    or (with `allow_nan=False`) NaN/Infinity."""
    if line.count("[") + line.count("{") > MAX_DEPTH and _depth(line) > MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    try:
        if allow_nan:
            return json.loads(line)
        return json.loads(line, parse_constant=_reject_constant)
    except RecursionError:  # unreachable after the depth check; kept so no input can end in a traceback
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as e:
        raise ValueError((str(e).splitlines() or ["not JSON"])[0][:200]) from None


def _depth(line: str) -> int:
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", line))
    return max(accumulate(_STEP[c] for c in brackets), default=0)


class Line(NamedTuple):
    number: int  # 1-based
    value: Any  # the parsed value; None when `problem` is set
    problem: str | None  # why the line is not JSON, or None


def parse_lines(lines: Iterable[str], allow_nan: bool = True) -> Iterator[Line]:
    """Every non-blank line, parsed or with its problem; line numbers count blank lines too."""
    for number, text in enumerate(lines, 1):
        if not text.strip():
            continue
        try:
            yield Line(number, parse_line(text, allow_nan), None)
        except ValueError as e:
            yield Line(number, None, str(e))


def read_jsonl(path: str | Path, allow_nan: bool = True) -> list[tuple[int, Any]]:
    """(line number, value) for every non-blank line of a UTF-8 file. The first bad line, or an
    unreadable file, is a UserError naming `file:line`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read ({getattr(e, 'strerror', None) or e})") from None
    out = []
    for line in parse_lines(text.splitlines(), allow_nan):
        if line.problem:
            raise UserError(f"{path}:{line.number}: not valid JSON ({line.problem})")
        out.append((line.number, line.value))
    return out


class JsonlTail:
    """New complete lines of a growing JSONL file someone else writes (a training run's metrics, an
    eval's progress): each read parses what was appended since the last one. A line still being
    written waits for its newline; malformed or non-object lines (and lines longer than `max_line`)
    are counted in `bad` and skipped. A file that shrank or was replaced (a resumed run rewriting it)
    is read again from the start, and `restarted` says so until the next read."""

    def __init__(self, path: str | Path, max_line: int = 1_000_000) -> None:
        self.path, self.max_line = Path(path), max_line
        self.offset, self.bad, self.restarted = 0, 0, False
        self._file_id: tuple[int, int] | None = None
        self._skipping = False  # inside a line longer than max_line: dropped up to its newline

    def read(self) -> list[dict]:
        self.restarted = False
        try:
            with open(self.path, "rb") as f:
                st = os.fstat(f.fileno())
                file_id = (st.st_dev, st.st_ino)
                if st.st_size < self.offset or (self._file_id is not None and file_id != self._file_id):
                    self.offset, self.bad, self._skipping, self.restarted = 0, 0, False, True
                self._file_id = file_id
                f.seek(self.offset)
                data = f.read(4 * self.max_line)
        except OSError:
            return []
        if self._skipping:
            newline = data.find(b"\n")
            if newline < 0:
                self.offset += len(data)
                return []
            self.offset += newline + 1
            data, self._skipping = data[newline + 1:], False
        end = data.rfind(b"\n") + 1
        if not end and len(data) > self.max_line:  # no end in sight: drop it (bounded reads)
            self.bad += 1
            self.offset += len(data)
            self._skipping = True
            return []
        self.offset += end
        rows = []
        for line in data[:end].splitlines():
            if not line.strip():
                continue
            try:
                if len(line) > self.max_line:
                    raise ValueError("line too long")
                row = parse_line(line.decode("utf-8"))
            except ValueError:  # UnicodeDecodeError is one
                row = None
            if isinstance(row, dict):
                rows.append(row)
            else:
                self.bad += 1
        return rows
