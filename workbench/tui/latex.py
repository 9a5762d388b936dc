r"""LaTeX in model output shown as readable Unicode. Pure Python (no textual), table-tested.

    to_unicode(r"so \(x^2 = \frac{1}{2}\) and \boxed{42}")  ->  "so x² = ½ and ⟦42⟧"

Math inside `$..$`, `$$..$$`, `\(..\)`, `\[..\]` is converted whole (delimiters dropped); outside
math only known `\commands` are (R1 often writes a bare `\boxed{42}`), and `^`/`_` stay literal.
Code (fenced blocks, `inline`) is never touched. `convert(text, final=False)` stops before a
construct that is still arriving (an unclosed `$`, `\frac{1}{`) so a stream can hold it back;
`LatexStream` does that for a growing answer.
"""

from __future__ import annotations

import re

SYMBOLS = {
    # operators and relations
    "times": "×", "cdot": "·", "div": "÷", "pm": "±", "mp": "∓", "ast": "∗", "star": "⋆", "circ": "∘",
    "leq": "≤", "le": "≤", "geq": "≥", "ge": "≥", "neq": "≠", "ne": "≠", "approx": "≈", "equiv": "≡",
    "sim": "∼", "simeq": "≃", "cong": "≅", "propto": "∝", "ll": "≪", "gg": "≫", "mid": "|", "nmid": "∤",
    "parallel": "∥", "perp": "⊥", "infty": "∞", "partial": "∂", "nabla": "∇", "sum": "∑", "prod": "∏",
    "int": "∫", "oint": "∮", "to": "→", "rightarrow": "→", "leftarrow": "←", "Rightarrow": "⇒",
    "Leftarrow": "⇐", "implies": "⟹", "iff": "⟺", "leftrightarrow": "↔", "Leftrightarrow": "⇔",
    "mapsto": "↦", "in": "∈", "notin": "∉", "ni": "∋", "subset": "⊂", "subseteq": "⊆", "supset": "⊃",
    "supseteq": "⊇", "cup": "∪", "cap": "∩", "setminus": "∖", "emptyset": "∅", "varnothing": "∅",
    "forall": "∀", "exists": "∃", "neg": "¬", "lnot": "¬", "land": "∧", "wedge": "∧", "lor": "∨",
    "vee": "∨", "oplus": "⊕", "otimes": "⊗", "angle": "∠", "triangle": "△", "degree": "°",
    "therefore": "∴", "because": "∵", "ldots": "…", "dots": "…", "cdots": "⋯", "vdots": "⋮",
    "ddots": "⋱", "ell": "ℓ", "hbar": "ℏ", "Re": "ℜ", "Im": "ℑ", "aleph": "ℵ", "prime": "′",
    "langle": "⟨", "rangle": "⟩", "lfloor": "⌊", "rfloor": "⌋", "lceil": "⌈", "rceil": "⌉",
    "lvert": "|", "rvert": "|", "vert": "|", "Vert": "‖", "lVert": "‖", "rVert": "‖", "backslash": "\\",
    "checkmark": "✓",
    # greek
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε", "varepsilon": "ε", "zeta": "ζ",
    "eta": "η", "theta": "θ", "vartheta": "ϑ", "iota": "ι", "kappa": "κ", "lambda": "λ", "mu": "μ",
    "nu": "ν", "xi": "ξ", "pi": "π", "varpi": "ϖ", "rho": "ρ", "varrho": "ϱ", "sigma": "σ", "tau": "τ",
    "upsilon": "υ", "phi": "φ", "varphi": "φ", "chi": "χ", "psi": "ψ", "omega": "ω", "Gamma": "Γ",
    "Delta": "Δ", "Theta": "Θ", "Lambda": "Λ", "Xi": "Ξ", "Pi": "Π", "Sigma": "Σ", "Upsilon": "Υ",
    "Phi": "Φ", "Psi": "Ψ", "Omega": "Ω",
    # spacing and escapes
    "quad": "  ", "qquad": "    ", ",": " ", ":": " ", ";": " ", "!": "", " ": " ", "%": "%", "$": "$",
    "{": "{", "}": "}", "_": "_", "&": "&", "#": "#",
}
FUNCTIONS = {"sin", "cos", "tan", "cot", "sec", "csc", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh",
             "log", "ln", "lg", "exp", "lim", "max", "min", "sup", "inf", "gcd", "lcm", "det", "deg", "dim",
             "arg", "mod", "bmod", "Pr", "ker"}
DROPPED = {"left", "right", "big", "Big", "bigg", "Bigg", "bigl", "bigr", "Bigl", "Bigr", "displaystyle",
           "textstyle", "limits", "nolimits", "middle", "nonumber", "notag"}
TEXT_ARG = {"text", "textrm", "mbox", "textit", "textbf", "textnormal"}  # argument copied as is
STYLE_ARG = {"mathrm", "mathbf", "mathit", "mathsf", "mathtt", "boldsymbol", "bm", "operatorname", "mathcal"}
ACCENTS = {"vec": "\u20d7", "hat": "\u0302", "bar": "\u0305", "overline": "\u0305", "tilde": "\u0303",
           "dot": "\u0307", "ddot": "\u0308", "widehat": "\u0302", "widetilde": "\u0303"}
DOUBLE_STRUCK = {"R": "ℝ", "N": "ℕ", "Z": "ℤ", "Q": "ℚ", "C": "ℂ", "P": "ℙ", "E": "𝔼"}
SUPERSCRIPT = dict(zip("0123456789+-=()niabcdefghjklmoprstuvwxyzABDEGHIJKLMNOPRTUVW",
                       "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁼⁽⁾ⁿⁱᵃᵇᶜᵈᵉᶠᵍʰʲᵏˡᵐᵒᵖʳˢᵗᵘᵛʷˣʸᶻᴬᴮᴰᴱᴳᴴᴵᴶᴷᴸᴹᴺᴼᴾᴿᵀᵁⱽᵂ"))
SUPERSCRIPT.update({"−": "⁻", "′": "′", "∗": "*", "*": "*", "∘": "°", "°": "°", " ": ""})
SUBSCRIPT = dict(zip("0123456789+-=()aehijklmnoprstuvx", "₀₁₂₃₄₅₆₇₈₉₊₋₌₍₎ₐₑₕᵢⱼₖₗₘₙₒₚᵣₛₜᵤᵥₓ"))
SUBSCRIPT.update({"−": "₋", " ": ""})
VULGAR = {("1", "2"): "½", ("1", "3"): "⅓", ("2", "3"): "⅔", ("1", "4"): "¼", ("3", "4"): "¾",
          ("1", "5"): "⅕", ("1", "6"): "⅙", ("1", "8"): "⅛", ("3", "8"): "⅜", ("1", "10"): "⅒"}
_SCRIPTS = set(SUPERSCRIPT.values()) | set(SUBSCRIPT.values())
ROOTS = {"2": "√", "3": "∛", "4": "∜"}
BOX = ("⟦", "⟧")


_PLAIN = re.compile(r"[^`$\\\n]+")  # a run of text no construct starts in
_FENCE = re.compile(r" {0,3}(```|~~~)")
_FENCE_PREFIX = re.compile(r" {0,3}(?:`{0,2}|~{0,2})\Z")  # a line start that may still become a fence
_BACKTICKS = re.compile(r"`+")
_BRACES = re.compile(r"\\.|[{}]", re.S)
MAX_SPAN = 1000  # characters: a construct not closed within this is shown as written (bounds each scan)
HELD_CHEAP = 64  # characters held back that are simply converted again with each delta
MAX_DEPTH = 12  # nesting converted; deeper braces are shown as written (bounds the recursion)


class Incomplete(Exception):
    """The text ends inside a construct that may still be completed."""

    pass


class NotConstruct(Exception):
    """Not closed within MAX_SPAN (or nested deeper than MAX_DEPTH): shown as written."""


def to_unicode(text: str, markdown: bool = False) -> str:
    """All of `text` converted (anything unfinished is left as written)."""
    return convert(text, final=True, markdown=markdown)[0]


def convert(text: str, final: bool = True, markdown: bool = False, in_fence: bool = False) -> tuple[str, int]:
    """(converted text, how much of `text` it covers). With final=False it stops before an unfinished
    construct at the end; `in_fence` says the text starts inside a fenced code block."""
    out, covered, _ = _convert(text, 0, final, markdown, (True, in_fence, False))
    return out, covered


def _convert(text: str, i: int, final: bool, markdown: bool, state: tuple) -> tuple[str, int, tuple]:
    """Convert `text` from `i`, in `state` (at a line start, in a code fence, in a line copied raw);
    returns (output, index covered, state there). Every decision before the index covered is final:
    nothing a later character could change is decided early (a closing `$` waits for the character
    after it), so a stream can resume there. Each scan is bounded by MAX_SPAN."""
    _closers.cache = {}
    line_start, in_fence, raw_line = state
    out: list[str] = []
    n = len(text)
    scanned = 0  # how far the last inline `$` scan looked: no closing `$` before it
    while i < n:
        try:
            if raw_line:  # a fence line, or a line inside a code block: copied as written
                end = text.find("\n", i) + 1  # 0: the line goes on past what has arrived
                out.append(text[i:end or n])
                i, line_start, raw_line = end or n, end > 0, end == 0
                continue
            if line_start:
                fence = _FENCE.match(text, i)
                if not fence and not final and text.find("\n", i) < 0 and _FENCE_PREFIX.match(text, i):
                    raise Incomplete()
                if fence or in_fence:
                    if fence:
                        in_fence = not in_fence
                    raw_line = True
                    continue
            c = text[i]
            line_start = c == "\n"
            if c == "`":
                run = _BACKTICKS.match(text, i).group()
                close = text.find(run, i + len(run), i + len(run) + MAX_SPAN)
                if close < 0:
                    if not final and n - i < MAX_SPAN:
                        raise Incomplete()
                    out.append(run)
                    i += len(run)
                    continue
                out.append(text[i:close + len(run)])
                i = close + len(run)
            elif text.startswith("$$", i) or text.startswith("\\[", i) or text.startswith("\\(", i):
                opener = text[i:i + 2]
                closer = {"$$": "$$", "\\[": "\\]", "\\(": "\\)"}[opener]
                close = text.find(closer, i + 2, i + 2 + MAX_SPAN)
                if close < 0:
                    if not final and n - i < MAX_SPAN:
                        raise Incomplete()
                    out.append(opener)
                    i += 2
                    continue
                out.append(_math(text[i + 2:close], markdown).strip())
                i = close + 2
            elif c == "$":
                # A scan that passed this `$` without finding a closer goes on from where it stopped.
                close, scanned = _inline_dollar_end(text, i, final, scanned if i < scanned else i + 1)
                if close == -2:
                    raise Incomplete()
                if close < 0:
                    out.append("$")
                    i += 1
                    continue
                out.append(_math(text[i + 1:close], markdown))
                i = close + 1
            elif c == "\\":
                name, j = _command_name(text, i)
                if j >= n and (name.isalpha() or not name) and not final:
                    raise Incomplete()  # the name may still grow
                if name.isalpha() and _is_known(name):  # `\$`, `\_` in prose are Markdown escapes: left alone
                    converted, i = _command(text, i, markdown, complete=False)
                    out.append(converted)
                else:
                    out.append(text[i:j])
                    i = j
            else:  # plain text: the whole run up to the next character that may start something
                run = _PLAIN.match(text, i)
                out.append(run.group() if run else c)
                i = run.end() if run else i + 1
        except NotConstruct:
            out.append(text[i])
            line_start = text[i] == "\n"
            i += 1
        except Incomplete:
            if final:
                out.append(text[i])
                line_start = text[i] == "\n"
                i += 1
                continue
            return "".join(out), i, (line_start, in_fence, raw_line)
    return "".join(out), n, (line_start, in_fence, raw_line)


def _inline_dollar_end(text: str, i: int, final: bool = True, start: int | None = None) -> tuple[int, int]:
    """(index of the `$` closing inline math opened at i, or -1 if it is not math, -2 if not yet
    known; how far the scan went). `start`: where to scan from, past `$`s already known not to close."""
    n = len(text)
    if i + 1 >= n:
        return -2, i + 1
    if text[i + 1].isspace() or (i > 0 and text[i - 1] == "\\"):
        return -1, i + 1
    j = max(i + 1, start or 0)
    limit = min(n, i + 1 + MAX_SPAN)
    while j < limit:
        c = text[j]
        if c == "\n":
            return -1, j
        if c == "\\":
            j += 2
            continue
        # pandoc's rule: the closing $ follows a non-space and is not followed by a digit
        if c == "$" and not text[j - 1].isspace():
            if j + 1 >= n and not final:
                return -2, j  # the next character decides
            if j + 1 < n and text[j + 1].isdigit():
                return -1, j
            return j, j
        j += 1
    if limit < n or final:
        return -1, j  # not closed within MAX_SPAN, or by the end
    return -2, j


def _command_name(text: str, i: int) -> tuple[str, int]:
    j = i + 1
    if j < len(text) and text[j].isalpha():
        while j < len(text) and text[j].isalpha():
            j += 1
        return text[i + 1:j], j
    return text[i + 1:j + 1], min(j + 1, len(text))


def _is_known(name: str) -> bool:
    return (name in SYMBOLS or name in FUNCTIONS or name in DROPPED or name in TEXT_ARG or name in STYLE_ARG
            or name in ACCENTS or name in {"frac", "dfrac", "tfrac", "cfrac", "sqrt", "boxed", "binom",
                                           "mathbb", "begin", "end", "not", "pmod"})


def _group(text: str, i: int) -> tuple[str, int]:
    """The brace group starting at text[i] == '{': (inside, index after it)."""
    close = _closers(text).get(i)
    if close is None:
        if len(text) - i > MAX_SPAN:
            raise NotConstruct()
        raise Incomplete()
    if close - i > MAX_SPAN:
        raise NotConstruct()
    return text[i + 1:close], close + 1


def _closers(text: str) -> dict[int, int]:
    """Where each `{` of `text` closes, found in one pass and kept while one conversion runs (a
    group's end is then looked up, not scanned for again from each of many nested openers)."""
    cached = _closers.cache.get(id(text))
    if cached is not None and cached[0] is text:
        return cached[1]
    table, stack = {}, []
    for m in _BRACES.finditer(text):
        c = m.group()
        if c == "{":
            stack.append(m.start())
        elif c == "}" and stack:
            table[stack.pop()] = m.start()
    _closers.cache[id(text)] = (text, table)
    return table


_closers.cache = {}


def _argument(text: str, i: int, complete: bool = True) -> tuple[str, int]:
    """One macro argument at i (after spaces): a {group}, a \\command, or one character.
    `complete`: the text cannot grow (math whose end was seen), so a name at its end is whole."""
    while i < len(text) and text[i] == " ":
        i += 1
    if i >= len(text):
        raise Incomplete()
    if text[i] == "{":
        return _group(text, i)
    if text[i] == "\\":
        name, j = _command_name(text, i)
        if not complete and j >= len(text) and (name.isalpha() or not name):
            raise Incomplete()  # the name may still grow
        return text[i:j], j
    return text[i], i + 1


def _wrap(s: str) -> str:
    """Parenthesised unless it is one number, name or symbol (a fraction part, a root's argument)."""
    s = s.strip()
    plain = all(c.isalnum() or c in ".′√∛∜" or c in _SCRIPTS for c in s)
    return s if plain or len(s) == 1 else f"({s})"


def _script(s: str, table: dict, mark: str) -> str:
    s = s.strip()
    if s and all(c in table for c in s):
        return "".join(table[c] for c in s)
    return f"{mark}{s}" if len(s) == 1 else f"{mark}({s})"


def _command(text: str, i: int, markdown: bool = False, depth: int = 0, complete: bool = True) -> tuple[str, int]:
    """Convert the command at text[i] == '\\'; returns (output, index after it and its arguments)."""
    name, j = _command_name(text, i)
    if name in SYMBOLS:
        return SYMBOLS[name], j
    if name in FUNCTIONS:
        return name, j
    if name in DROPPED:
        if name in ("left", "right", "middle") and j < len(text) and text[j] == ".":
            j += 1
        return "", j
    if name in ("frac", "dfrac", "tfrac", "cfrac", "binom"):
        num, j = _argument(text, j, complete)
        den, j = _argument(text, j, complete)
        a, b = _math(num, depth=depth + 1).strip(), _math(den, depth=depth + 1).strip()
        if name == "binom":
            return f"C({a}, {b})", j
        return VULGAR.get((a, b)) or f"{_wrap(a)}/{_wrap(b)}", j
    if name == "sqrt":
        index = "2"
        while j < len(text) and text[j] == " ":
            j += 1
        if j < len(text) and text[j] == "[":
            close = text.find("]", j, j + MAX_SPAN)
            if close < 0:
                raise NotConstruct() if len(text) - j >= MAX_SPAN else Incomplete()
            index, j = _math(text[j + 1:close], depth=depth + 1).strip(), close + 1
        arg, j = _argument(text, j, complete)
        root = ROOTS.get(index) or _script(index, SUPERSCRIPT, "^") + "√"
        return root + _wrap(_math(arg, depth=depth + 1)), j
    if name == "boxed":
        arg, j = _argument(text, j, complete)
        inner = _math(arg, markdown, depth + 1).strip()
        boxed = f"{BOX[0]}{inner}{BOX[1]}"
        return (f"**{boxed}**" if markdown else boxed), j
    if name in TEXT_ARG:
        arg, j = _argument(text, j, complete)
        return arg, j
    if name in STYLE_ARG:
        arg, j = _argument(text, j, complete)
        return _math(arg, markdown, depth + 1), j
    if name == "mathbb":
        arg, j = _argument(text, j, complete)
        return "".join(DOUBLE_STRUCK.get(c, c) for c in arg), j
    if name in ACCENTS:
        arg, j = _argument(text, j, complete)
        base = _math(arg, markdown, depth + 1)
        return (base + ACCENTS[name] if len(base) == 1 else f"{base}{ACCENTS[name]}"), j
    if name in ("begin", "end"):
        _, j = _argument(text, j, complete)
        return ("" if name == "begin" else ""), j
    if name == "not":
        arg, j = _argument(text, j, complete)
        return _math(arg, depth=depth + 1) + "\u0338", j
    if name == "pmod":
        arg, j = _argument(text, j, complete)
        return f" (mod {_math(arg, depth=depth + 1)})", j
    return text[i:j], j


def _math(s: str, markdown: bool = False, depth: int = 0) -> str:
    """Convert the inside of a math span (complete: its closing delimiter was seen). Nested deeper
    than MAX_DEPTH, it is shown as written."""
    if depth > MAX_DEPTH:
        return s
    out: list[str] = []
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        try:
            if c == "\\":
                if s.startswith("\\\\", i):
                    out.append("\n")
                    i += 2
                    continue
                converted, i = _command(s, i, markdown, depth)
                out.append(converted)
            elif c in "^_":
                arg, i = _argument(s, i + 1)
                inner = _math(arg, markdown, depth + 1)
                out.append(_script(inner, SUPERSCRIPT if c == "^" else SUBSCRIPT, c))
            elif c == "{":
                arg, i = _group(s, i)
                out.append(_math(arg, markdown, depth + 1))
            elif c in "&}":
                i += 1
            elif c == "~":
                out.append(" ")
                i += 1
            elif c == "-":
                out.append("−")
                i += 1
            else:
                out.append(c)
                i += 1
        except (Incomplete, NotConstruct):
            out.append(c)  # unbalanced inside complete math: show what is there
            i += 1
    return "".join(out)


class LatexStream:
    """Converts a growing text for append-only display.

    `feed(delta)` returns (text to append, replacement). Conversion resumes where the last one
    stopped (before a construct still arriving, which is held back, at most MAX_SPAN characters):
    each delta costs its own length plus the held-back construct, never the text before it. Every
    decision waits for the characters it depends on, so earlier output never changes and
    `replacement` is always None (kept for callers that redraw on it).
    """

    def __init__(self, markdown: bool = False) -> None:
        self.markdown = markdown
        self._pieces: list[str] = []  # raw text not converted yet (held back), in pieces
        self._state = (True, False, False)  # at a line start, in a code fence, in a line copied raw
        self._held = 0  # characters held back
        self._parts: list[str] = []  # self.raw, in pieces (joined when read)
        self._out_parts: list[str] = []

    def feed(self, delta: str, final: bool = False) -> tuple[str, str | None]:
        if delta:
            self._pieces.append(delta)
            self._parts.append(delta)
            self._held += len(delta)
        if not final and self._held < MAX_SPAN and self._can_wait(delta):
            return "", None
        tail = "".join(self._pieces)
        ready = len(tail)
        for _ in range(4):  # each try settles less; a few tries end it, else everything waits
            append, covered, state = _convert(tail[:ready], 0, final, self.markdown, self._state)
            # A backslash decides what the character after it is (`\\$` opens no math): never settle one
            # without that character, or the rest would be converted without it.
            back = 0 if final or self._held >= MAX_SPAN else covered - len(tail[:covered].rstrip("\\"))
            if not back:
                break
            ready = covered - back
        else:
            return "", None  # still a backslash at the end: hold it all (MAX_SPAN bounds the wait)
        self._state = state
        rest = tail[covered:]
        self._pieces, self._held = ([rest] if rest else []), len(rest)
        self._out_parts.append(append)
        return append, None

    def finish(self) -> tuple[str, str | None]:
        return self.feed("", final=True)

    def preview(self) -> str:
        """All the text so far as if it had ended here (what is held back converted as it stands):
        equal to `to_unicode(self.raw)`, at the cost of the held-back part only."""
        held = "".join(self._pieces)
        return self.out + (_convert(held, 0, True, self.markdown, self._state)[0] if held else "")

    @property
    def raw(self) -> str:
        """The text fed so far (kept in pieces: appending never copies what came before)."""
        self._parts[:] = ["".join(self._parts)]
        return self._parts[0]

    @property
    def out(self) -> str:
        """The converted text handed out so far."""
        self._out_parts[:] = ["".join(self._out_parts)]
        return self._out_parts[0]

    def _can_wait(self, delta: str) -> bool:
        """Nothing held back can be settled by `delta`: a long construct is open (an unclosed
        `\\boxed{` or `$`) and only letters, digits and spaces arrived after a letter, digit or space.
        (Only a closing or deciding character, or reaching MAX_SPAN, ends the wait; converting the
        held text again for each such delta would cost its length every time.)"""
        held = self._held - len(delta)
        if held <= HELD_CHEAP or len(self._pieces) < 2:
            return False
        before = self._pieces[-2][-1:]
        return (before.isalnum() or before == " ") and delta.replace(" ", "").isalnum()
