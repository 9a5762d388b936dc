"""The main screen's widgets: the thinking pane, the answer transcript, the status line."""

from __future__ import annotations

import re
import time
from bisect import bisect_right

from markdown_it import MarkdownIt
from rich.cells import cell_len, chop_cells
from rich.markdown import Markdown as RichMarkdown
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.containers import Vertical, VerticalScroll
from textual.geometry import Region, Size
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Collapsible, Markdown, Static

from workbench.engine.events import CUT_WORDS, Stats, memory_text
from workbench.tui.latex import LatexStream, to_unicode
from workbench.terminal import printable
from workbench.verify.answer import extract_answer

_WORDS = re.compile(r"\S+\s*|\s+")
TAB = "    "  # panes draw cells, where a tab has no width


def answer_parser() -> MarkdownIt:
    """Markdown for model answers: raw HTML (`<div>`, `<!-- -->`, `<script>`) is text, shown as
    written. (With HTML on, Textual and Rich drop it: the answer would lose what the model wrote.)"""
    return MarkdownIt("gfm-like", {"html": False})


def wrap(line: str, width: int, start: int = 0) -> tuple[list[str], list[int]]:
    """Word-wrap `line[start:]` to `width` cells (long words are cut): the rows, and where each row
    starts in `line`. Greedy, so a row's break depends only on its own words and the next one:
    rewrapping from any row start gives the same rows as wrapping the whole line."""
    if width < 1 or (start == 0 and cell_len(line) <= width):
        return [line], [0]
    rows, starts, row, used = [], [], "", 0
    for match in _WORDS.finditer(line, start):
        word, at = match.group(), match.start()
        size = cell_len(word.rstrip())
        if used + size > width and row:
            rows.append(row.rstrip())
            row, used = "", 0
        while cell_len(word.rstrip()) > width:
            head, *_ = chop_cells(word, width)
            rows.append(head)
            starts.append(at)
            word, at = word[len(head):], at + len(head)
        if not row:
            starts.append(at)
        row += word
        used += cell_len(word)
    rows.append(row.rstrip())
    return rows, starts


def common_prefix(a: str, b: str) -> int:
    """Length of the longest common prefix (binary search over C-speed slice compares)."""
    if b.startswith(a):
        return len(a)
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


class FollowsEnd:
    """Sticky auto-scroll: follow new content until the user scrolls up; back at the bottom, follow
    again. (Textual's `anchor()` also bottom-aligns short content, which reads oddly here.)"""

    following = True
    follow_at_once = False  # True where the content's height is known without a layout pass

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        if new < old:
            self.following = False  # scrolling up (content only ever grows at the bottom)
        if new >= self.max_scroll_y:
            self.following = True

    def follow(self) -> None:
        if self.following:
            self.scroll_end(animate=False, immediate=self.follow_at_once)


class ThinkingView(FollowsEnd, ScrollView, can_focus=True):
    """The thinking, as plain wrapped text. Appends only rewrap the last line, never the whole text.

    Follows the stream while scrolled to the bottom; scrolling up lets go, scrolling back resumes.
    `highlight` (a compiled pattern, None by default) marks its matches in each row: the inspector
    sets it to the reflection markers while it is open.
    """

    HIGHLIGHT_STYLE = Style(bold=True, reverse=True)
    STEER_MARK = re.compile(r"⟦/?[a-z_ ]+⟧")  # around text the engine wrote (`append(..., shown=)`)
    STEER_STYLE = Style(bold=True, color="black", bgcolor="yellow")
    follow_at_once = True  # its rows are counted here, not by a layout pass (see _resized)

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.highlight: re.Pattern | None = None
        self.raw = ""  # the thinking as the model wrote it
        self.raw_mode = False  # show LaTeX source instead of Unicode
        self._lines: list[str] = [""]  # logical lines, raw
        self._last_line = LatexStream()  # the last line, converted as it grows (not again per append)
        self._rows: list[str] = []  # wrapped display rows
        self._last_display, self._last_starts = "", [0]  # the last line as shown, where its rows start
        self._row_start: list[int] = [0]  # first row of each logical line
        self._width = 0
        self._drawn_rows = 0  # rows when last redrawn: a shorter text must clear the rest

    def display_line(self, line: str) -> str:
        return printable(line if self.raw_mode else to_unicode(line), tab=TAB)

    def _display(self, index: int) -> str:
        """Logical line `index` as shown; the last, still growing, from its converter."""
        if self.raw_mode or index != len(self._lines) - 1:
            return self.display_line(self._lines[index])
        return printable(self._last_line.preview(), tab=TAB)

    def clear(self) -> None:
        self.raw, self._lines = "", [""]
        self._last_line = LatexStream()
        self._rewrap_all()

    def set_text(self, text: str) -> None:
        self.clear()
        self.append(text)

    def append(self, text: str, shown: str | None = None) -> None:
        """`shown`: what to show instead of `text` (the raw thinking keeps `text`)."""
        if not text and not shown:
            return
        self.raw += text
        first, *more = (text if shown is None else shown).split("\n")
        self._lines[-1] += first
        self._lines.extend(more)
        self._last_line.feed(first)
        for raw in more:
            self._last_line = LatexStream()
            self._last_line.feed(raw)
        changed = len(self._lines) - 1 - len(more)  # the line that grew, then the new ones
        # Rewrap the grown line from the row before its first changed character, not from its start:
        # a long paragraph would otherwise be rewrapped whole on every append.
        line = self._display(changed)
        k = max(0, bisect_right(self._last_starts, common_prefix(self._last_display, line)) - 2)
        first_row = self._row_start[changed] + k
        rows, starts = wrap(line, self._width, self._last_starts[k]) if k else wrap(line, self._width)
        starts = self._last_starts[:k] + starts
        del self._rows[first_row:]
        del self._row_start[changed + 1:]
        self._rows.extend(rows)
        for index in range(changed + 1, len(self._lines)):
            line = self._display(index)
            rows, starts = wrap(line, self._width)
            self._row_start.append(len(self._rows))
            self._rows.extend(rows)
        self._last_display, self._last_starts = line, starts
        self._resized(first_row=first_row)
        self.follow()  # a scroll redraws the whole pane itself

    def _rewrap_all(self) -> None:
        self._rows, self._row_start = [], []
        for line in self._lines:
            self._row_start.append(len(self._rows))
            self._last_display = self.display_line(line)
            rows, self._last_starts = wrap(self._last_display, self._width)
            self._rows.extend(rows)
        self._resized()

    def _resized(self, first_row: int = 0) -> None:
        """The rows changed from `first_row` on: update the scroll size, redraw what changed."""
        size = Size(self._width, len(self._rows))
        if size != self.virtual_size:
            # Setting `virtual_size` asks for a layout pass, which composes the whole screen (~15 ms at
            # 160x48) on every streamed chunk. Growing text changes only this pane; a layout pass is
            # needed only when the scrollbar comes or goes, and _scroll_update then asks for it.
            self.set_reactive(ScrollView.virtual_size, size)
            self._scroll_update(size)
            width = self.scrollable_content_region.width
            if self._width and width > 0 and width != self._width:  # the scrollbar came or went
                self._width = width
                self._rewrap_all()
                return
        # Only the rows that changed, from `first_row` to the end of the longer of the old and new
        # text (a scroll redraws the whole pane anyway); regions are relative to the content.
        scroll_y = round(self.scroll_y)
        end = max(len(self._rows), self._drawn_rows)
        self._drawn_rows = len(self._rows)
        top, bottom = max(first_row, scroll_y), min(end, scroll_y + self.scrollable_content_region.height)
        if bottom > top:
            self.refresh(Region(0, top - scroll_y, self.size.width, bottom - top))

    def on_resize(self) -> None:
        width = max(1, self.scrollable_content_region.width)
        if width != self._width:
            self._width = width
            self._rewrap_all()
            self.follow()

    def render_lines(self, crop):
        self._style = self.rich_style  # once per pass: computing it per line costs more than the line
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        row = scroll_y + y
        style = getattr(self, "_style", None) or self.rich_style
        width = self.scrollable_content_region.width
        if row >= len(self._rows):
            return Strip.blank(width, style)
        text = self._rows[row]
        for pattern, marked in ((self.highlight, self.HIGHLIGHT_STYLE), (self.STEER_MARK if "⟦" in text else None,
                                                                           self.STEER_STYLE)):
            if pattern is None:
                continue
            segments, at = [], 0
            for m in pattern.finditer(text):
                segments += [Segment(text[at:m.start()], style), Segment(m.group(0), style + marked)]
                at = m.end()
            if segments:
                segments.append(Segment(text[at:], style))
                return Strip(segments).crop_extend(scroll_x, scroll_x + width, style)
        return Strip([Segment(text, style)], len(text) if text.isascii() else cell_len(text)).crop_extend(
            scroll_x, scroll_x + width, style)


class FrozenMarkdown(Widget):
    """Finished Markdown rendered once per width (by Rich) into cached lines: one cheap widget."""

    def __init__(self, source: str) -> None:
        super().__init__(classes="frozen")
        self.source = source
        self._lines: dict[int, list[Strip]] = {}  # width -> rendered lines

    def lines(self, width: int) -> list[Strip]:
        if width not in self._lines:
            console = self.app.console
            markdown = RichMarkdown("", hyperlinks=False)
            # Rich parses with HTML on: parse again as the live segment does (raw HTML as text).
            markdown.parsed = MarkdownIt("commonmark", {"html": False}).enable(["strikethrough", "table"]).parse(
                self.source)
            rendered = console.render_lines(markdown,
                                            console.options.update_width(max(1, width)), pad=False)
            if len(self._lines) > 3:
                self._lines.clear()
            self._lines[width] = [Strip(line) for line in rendered]
        return self._lines[width]

    def get_content_height(self, container, viewport, width: int) -> int:
        return len(self.lines(width))

    def render_line(self, y: int) -> Strip:
        lines = self.lines(self.size.width)
        return lines[y].crop_extend(0, self.size.width, self.rich_style) if y < len(lines) else \
            Strip.blank(self.size.width, self.rich_style)


SEGMENT_CHARS = 2000  # a long answer streams into a new Markdown widget every ~2,000 characters


class TurnView(Vertical):
    """One prompt and its response in the transcript. The live turn streams into its Markdown.

    A long answer is split at paragraph breaks into several Markdown widgets: Textual lays out a
    widget's blocks on every append, so only the last, short segment should be growing.
    """

    def __init__(self, prompt: str, raw_mode: bool = False) -> None:
        super().__init__(classes="turn")
        self.prompt = prompt
        self.raw_mode = raw_mode
        self.answer = LatexStream(markdown=True)
        self.thinking = ""
        # the segment being streamed into
        self.markdown = Markdown("", open_links=False, parser_factory=answer_parser)
        self.segments = [self.markdown]
        self.segment_chars = 0
        self.fences = 0  # code fences written so far (never split inside a code block)
        self.source = Static("", classes="source", markup=False)  # raw LaTeX view (one key away)
        self.stream = None
        self.finished = False  # finish() has drawn everything

    def compose(self):
        yield Static(Text("› " + printable(self.prompt)), classes="prompt")
        yield self.markdown
        yield self.source

    def on_mount(self) -> None:
        self.stream = Markdown.get_stream(self.markdown)

    async def write(self, delta: str) -> None:
        append, replacement = self.answer.feed(printable(delta, tab=TAB))
        await self._show(append, replacement)
        if self.raw_mode:
            self.source.update(Text(self.answer.raw))
        self._follow()

    def _follow(self) -> None:
        if isinstance(self.parent, FollowsEnd):
            self.parent.follow()

    async def _show(self, append: str, replacement: str | None) -> None:
        if replacement is not None:  # a later fragment changed how earlier text converts: redraw
            await self.stream.stop()
            for segment in self.segments[:-1]:
                await segment.remove()
            self.segments = self.segments[-1:]
            await self.markdown.update(replacement)
            self.segment_chars, self.fences = len(replacement), replacement.count("```")
            self.stream = Markdown.get_stream(self.markdown)
            return
        while append:
            # The first paragraph break past this segment's budget, outside a code block, ends it.
            cut = append.find("\n\n", max(0, SEGMENT_CHARS - self.segment_chars))
            if cut < 0 or (self.fences + append[:cut].count("```")) % 2:
                break
            head, append = append[:cut + 2], append[cut + 2:]
            self.fences += head.count("```")
            await self.stream.write(head)
            await self.freeze()
        self.fences += append.count("```")
        self.segment_chars += len(append)
        await self.stream.write(append)

    async def freeze(self) -> None:
        """Swap the streamed segment for one Static showing the same Markdown (rendered by Rich), and
        stream on into a new segment: Textual lays out every block widget on each update, so the
        transcript must not accumulate thousands of them."""
        await self.stream.stop()
        done = self.markdown
        frozen = FrozenMarkdown(done.source)
        self.markdown = Markdown("", open_links=False, parser_factory=answer_parser)
        self.segments = [*self.segments[:-1], frozen, self.markdown]
        await self.mount(frozen, self.markdown, before=done)
        await done.remove()
        self.stream = Markdown.get_stream(self.markdown)
        self.segment_chars = 0

    async def finish(self, thinking: str, stats: Stats | None, error: str | None) -> None:
        """The response ended: flush held-back text, fold the thinking away, frame the final answer."""
        await self._show(*self.answer.finish())
        await self.stream.stop()
        self.thinking = thinking
        if thinking:
            seconds = f", {stats.thinking_time:.1f} s" if stats else ""
            title = f"Thinking ({stats.thinking_tokens:,} tokens{seconds})" if stats else "Thinking"
            body = Static(Text(printable(thinking if self.raw_mode else to_unicode(thinking))), markup=False,
                          classes="thought")
            await self.mount(Collapsible(body, title=title, collapsed=True), before=self.segments[0])
        found = extract_answer(self.answer.raw)
        if found.anchored:  # boxed or after "the answer is": what the verifiers read as the answer
            final = Static(Text(printable(to_unicode(f"\\({found.text}\\)"))), classes="final", markup=False)
            final.border_title = "final answer"
            await self.mount(final, before=self.source)
        if error:
            await self.mount(Static(Text("error: " + printable(error)), classes="error"))
        elif stats:
            await self.mount(Static(Text(stats.summary()), classes="stats"))
        self.finished = True
        self._follow()

    async def set_raw(self, raw_mode: bool) -> None:
        self.raw_mode = raw_mode
        self.source.update(Text(self.answer.raw))
        for body in self.query(".thought"):
            body.update(Text(printable(self.thinking if raw_mode else to_unicode(self.thinking))))


class Transcript(FollowsEnd, VerticalScroll):
    """The Answer pane: every turn of the chat, earlier thinking collapsed, the live answer last."""


class StatusLine(Widget):
    """Model · phase · tokens and tok/s per phase · time to first token · thinking time · memory.

    A plain Widget, not a Static: Static.update() asks for a layout of the whole screen, and this
    line changes with every chunk of a stream; its height never changes.
    """

    EVERY = 0.5  # default seconds between updates while a phase streams (a new phase shows at once)
    clock = staticmethod(time.monotonic)  # tests replace this and memory_gb for reproducible snapshots

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.text = Text()
        self.model = ""
        self.where = ""  # a remote engine's endpoint ("" when the model runs here)
        self.cluster = ""  # our cluster's one-line per-rank summary, shown on a second line
        self.spinner = 0
        self.start = self.first = self.think_end = None
        self.thinking_tokens = self.answer_tokens = 0
        self._phase_shown, self._shown_at = None, 0.0  # what progress() last drew, and when
        self.every = self.EVERY  # the app sets it from its frame (a redraw every few frames)
        self.budget: int | None = None  # the response's thinking budget: "thinking 812/1024 tok"
        self.draft = ""  # speculative decoding's acceptance so far: "draft 61% accepted"
        self.context: int | None = None  # the context the user set (shown after the model: "ctx 8,192")
        self._shown: tuple = ((), "")  # the parts and style last shown (redrawn when the context changes)

    def render(self) -> Text:
        return self.text

    def memory_gb(self) -> float | None:
        """The peak resident memory of the engine's process (the app's child with ProcessEngine);
        None when the engine does not say (a remote one: its ranks' memory is on the cluster line)."""
        return self.app.engine.memory_gb()

    def show(self, *parts: str, style: str = "", apart: bool = False) -> None:
        """`apart`: redraw in a screen update of its own, after the one pending. Textual composes an
        update's bounding box, so this line and a streamed pane row in one update would redraw
        every widget between them."""
        self._shown = (parts, style)
        model = f"{self.model} on {self.where}" if self.where and self.model else self.model
        context = f"ctx {self.context:,}" if self.context else ""
        self.text = Text(" · ".join(p for p in (model, context, *parts) if p), style=style, no_wrap=True,
                         overflow="ellipsis")
        if self.cluster:
            self.text.append("\n" + self.cluster, style="dim")
        if apart:
            self.call_after_refresh(self.refresh)
        else:
            self.refresh()

    def set_context(self, context: int | None) -> None:
        """The context the user set, shown after the model from now on (the line as it was, redrawn)."""
        self.context = context
        parts, style = self._shown
        self.show(*parts, style=style)

    def set_cluster(self, line: str) -> None:
        """Our cluster's ranks (which layers each holds, its memory) on a second line."""
        self.cluster = printable(line)
        self.styles.height = 2 if self.cluster else 1
        self.text = Text(self.text.plain.split("\n")[0], style=self.text.style, no_wrap=True, overflow="ellipsis")
        if self.cluster:
            self.text.append("\n" + self.cluster, style="dim")
        self.refresh()

    def loading(self, name: str) -> None:
        self.model = name
        frame = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"[self.spinner % 10]
        self.spinner += 1
        self.show(f"{frame} loading {name} …")

    def started(self) -> None:
        self.start, self.first, self.think_end = self.clock(), None, None
        self._phase_shown, self._shown_at = None, 0.0
        self.thinking_tokens = self.answer_tokens = 0
        self.draft = ""
        self.show("waiting for the first token")

    def drafted(self, accepted: int, proposed: int) -> None:
        """Shown with the next progress redraw."""
        self.draft = f"draft {accepted / proposed:.0%} accepted" if proposed else ""

    def progress(self, thinking_tokens: int, answer_tokens: int) -> None:
        now = self.clock()
        if self.first is None:
            self.first = now
        if answer_tokens and self.think_end is None:
            self.think_end = now
        self.thinking_tokens += thinking_tokens
        self.answer_tokens += answer_tokens
        phase = "thinking" if self.think_end is None else "answering"
        if phase == self._phase_shown and now - self._shown_at < self.every:
            return  # its redraw widens the screen update past the pane that changed
        self._phase_shown, self._shown_at = phase, now
        ttft = f"first token {self.first - self.start:.2f} s"
        gb = self.memory_gb()
        memory = f"mem {gb:.2f} GB" if gb else ""
        if self.think_end is None:
            budget = f"/{self.budget:,}" if self.budget is not None else ""
            self.show("thinking", f"{self.thinking_tokens:,}{budget} tok", _rate(self.thinking_tokens, now - self.first),
                      self.draft, ttft, memory, apart=True)
        else:
            thought = f"thought for {self.think_end - self.first:.1f} s, {self.thinking_tokens:,} tokens"
            self.show("answering", thought, f"answer {self.answer_tokens:,} tok",
                      _rate(self.answer_tokens, now - self.think_end), self.draft, ttft, memory, apart=True)

    def finished(self, stats: Stats) -> None:
        """Compact, most telling first (the turn itself carries the full `Stats.summary()`)."""
        self.show(f"thought for {stats.thinking_time:.1f} s, {stats.thinking_tokens:,} tokens"
                  f" ({stats.thinking_tps:.1f} tok/s)",
                  f"answer {stats.answer_tokens:,} tok, {stats.answer_tps:.1f} tok/s",
                  f"first token {stats.time_to_first_token:.2f} s",
                  f"peak {memory_text(peak)}" if (peak := stats.peak_memory_gb or self.memory_gb()) else "",
                  f"prompt {stats.prompt_tokens:,} tok, {stats.prompt_cached_tokens:,} cached" if stats.prompt_cached_tokens else "",
                  CUT_WORDS.get(stats.thinking_cut, ""),
                  f"draft {stats.draft_acceptance:.0%} accepted" if stats.draft_proposed else "",
                  stats.finish_reason)

    def error(self, message: str) -> None:
        self.show("error: " + printable(message), style="bold red")


def _rate(tokens: int, seconds: float) -> str:
    return f"{tokens / seconds:.1f} tok/s" if seconds > 0 else "– tok/s"
