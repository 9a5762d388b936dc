"""Split a stream of text deltas into thinking and answer. Pure Python.

Handles what reasoning models actually emit:
- tags split across tokens (`<th` + `ink>`): a possible tag prefix is held back until decided;
- prompts that already opened `<think>` (`start_in_thinking=True`), and a redundant `<think>`
  re-emitted at the start of thinking;
- models that skip the tag (no `<think>` at the start: everything is answer);
- the `<think>\\n\\n</think>` bypass (empty thinking, then answer);
- thinking cut off by max tokens (`finish()` flushes; `closed` stays False);
- several think blocks in one response; a stray `</think>` in the answer is dropped.
Leading whitespace of each block is dropped (the `\\n` after `<think>`, the `\\n\\n` after `</think>`).
"""

from __future__ import annotations

from workbench.engine.events import Answer, Think

OPEN, CLOSE = "<think>", "</think>"


def _held_suffix(text: str, tags: tuple[str, ...]) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of one of `tags`."""
    longest = 0
    for tag in tags:
        for n in range(min(len(tag) - 1, len(text)), longest, -1):
            if text.endswith(tag[:n]):
                longest = n
                break
    return longest


class ReasoningSplitter:
    def __init__(self, start_in_thinking: bool = False, open_tag: str = OPEN, close_tag: str = CLOSE,
                 mid_block: bool = False):
        """`mid_block`: the stream continues a block already begun (its whitespace is text)."""
        self.open_tag, self.close_tag = open_tag, close_tag
        self.phase = "think" if start_in_thinking else "start"  # "start" | "think" | "answer"
        self.closed = False  # a thinking block has been closed
        self._pending = ""
        self._block_start = not mid_block  # at the start of a block: drop leading whitespace

    def close_thinking(self) -> list:
        """The engine closed the thinking (it wrote `</think>` itself): flush what was held, then answer."""
        out = self.finish() if self.phase == "think" else []
        if self.phase == "think":
            self.closed = True
            self._enter("answer")
        return out

    def continue_block(self) -> None:
        """The engine wrote text into the current block: what follows is not at its start."""
        self._block_start = False

    def _emit(self, out: list, text: str) -> None:
        if self._block_start:
            text = text.lstrip()
            if not text:
                return
            self._block_start = False
        if text:
            out.append(Think(text) if self.phase == "think" else Answer(text))

    def _enter(self, phase: str) -> None:
        self.phase, self._block_start = phase, True

    def feed(self, text: str) -> list:
        out: list = []
        self._pending += text
        while True:
            p = self._pending
            if self.phase == "start":
                s = p.lstrip()
                if not s:
                    return out
                if s.startswith(self.open_tag):
                    self._pending = s[len(self.open_tag):]
                    self._enter("think")
                    continue
                if self.open_tag.startswith(s):
                    return out  # maybe the beginning of <think>: wait for more
                self._enter("answer")
                continue
            if self.phase == "think":
                if self._block_start:
                    s = p.lstrip()
                    if s.startswith(self.open_tag):  # redundant <think> after a prompt that opened it
                        self._pending = s[len(self.open_tag):]
                        continue
                    if s and self.open_tag.startswith(s):
                        return out
                i = p.find(self.close_tag)
                if i >= 0:
                    self._emit(out, p[:i])
                    self._pending = p[i + len(self.close_tag):]
                    self.closed = True
                    self._enter("answer")
                    continue
                keep = _held_suffix(p, (self.close_tag,))
                self._emit(out, p[: len(p) - keep])
                self._pending = p[len(p) - keep:]
                return out
            # answer
            i_open, i_close = p.find(self.open_tag), p.find(self.close_tag)
            if i_close >= 0 and (i_open < 0 or i_close < i_open):
                self._emit(out, p[:i_close])  # a stray </think>: drop the tag, keep the text
                self._pending = p[i_close + len(self.close_tag):]
                continue
            if i_open >= 0:
                self._emit(out, p[:i_open])
                self._pending = p[i_open + len(self.open_tag):]
                self._enter("think")
                continue
            keep = _held_suffix(p, (self.open_tag, self.close_tag))
            self._emit(out, p[: len(p) - keep])
            self._pending = p[len(p) - keep:]
            return out

    def finish(self) -> list:
        """Flush what was held back: at the end of the stream a partial tag is just text."""
        out: list = []
        if self._pending:
            if self.phase == "start":
                self._enter("answer")
            self._emit(out, self._pending)
            self._pending = ""
        return out
