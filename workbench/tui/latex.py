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


class Incomplete(Exception):
    """The text ends inside a construct that may still be completed."""

    pass


def to_unicode(text: str, markdown: bool = False) -> str:
    """All of `text` converted (anything unfinished is left as written)."""
    return convert(text, final=True, markdown=markdown)[0]


def convert(text: str, final: bool = True, markdown: bool = False, in_fence: bool = False) -> tuple[str, int]:
    """(converted text, how much of `text` it covers). With final=False it stops before an unfinished
    construct at the end; `in_fence` says the text starts inside a fenced code block."""
    out: list[str] = []
    i, n = 0, len(text)
    line_start = True
    while i < n:
        try:
            if line_start:
                fence = re.match(r" {0,3}(```|~~~)", text[i:])
                if fence or in_fence:
                    end = text.find("\n", i)
                    if end < 0:
                        if not final:
                            raise Incomplete()
                        end = n - 1
                    if fence:
                        in_fence = not in_fence
                    out.append(text[i:end + 1])
                    i = end + 1
                    continue
            c = text[i]
            line_start = c == "\n"
            if c == "`":
                run = re.match(r"`+", text[i:]).group()
                close = text.find(run, i + len(run))
                if close < 0:
                    if not final:
                        raise Incomplete()
                    out.append(run)
                    i += len(run)
                    continue
                out.append(text[i:close + len(run)])
                i = close + len(run)
            elif text.startswith("$$", i) or text.startswith("\\[", i) or text.startswith("\\(", i):
                opener = text[i:i + 2]
                closer = {"$$": "$$", "\\[": "\\]", "\\(": "\\)"}[opener]
                close = text.find(closer, i + 2)
                if close < 0:
                    if not final:
                        raise Incomplete()
                    out.append(opener)
                    i += 2
                    continue
                out.append(_math(text[i + 2:close], markdown).strip())
                i = close + 2
            elif c == "$":
                close = _inline_dollar_end(text, i)
                if close == -2 and not final:
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
                    converted, i = _command(text, i, markdown)
                    out.append(converted)
                else:
                    out.append(text[i:j])
                    i = j
            else:  # plain text: the whole run up to the next character that may start something
                run = _PLAIN.match(text, i)
                out.append(run.group() if run else c)
                i = run.end() if run else i + 1
        except Incomplete:
            if final:
                out.append(text[i])
                i += 1
                continue
            return "".join(out), i
    return "".join(out), n


def _inline_dollar_end(text: str, i: int) -> int:
    """Index of the `$` closing inline math opened at i; -1 if it is not math, -2 if not yet known."""
    if i + 1 >= len(text):
        return -2
    if text[i + 1].isspace() or (i > 0 and text[i - 1] == "\\"):
        return -1
    j = i + 1
    while j < len(text):
        c = text[j]
        if c == "\n":
            return -1
        if c == "\\":
            j += 2
            continue
        # pandoc's rule: the closing $ follows a non-space and is not followed by a digit
        if c == "$" and not text[j - 1].isspace():
            if j + 1 < len(text) and text[j + 1].isdigit():
                return -1
            return j
        j += 1
    return -2


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
    depth, j = 0, i
    while j < len(text):
        c = text[j]
        if c == "\\":
            j += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1:j], j + 1
        j += 1
    raise Incomplete()


def _argument(text: str, i: int) -> tuple[str, int]:
    """One macro argument at i (after spaces): a {group}, a \\command, or one character."""
    while i < len(text) and text[i] == " ":
        i += 1
    if i >= len(text):
        raise Incomplete()
    if text[i] == "{":
        return _group(text, i)
    if text[i] == "\\":
        name, j = _command_name(text, i)
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


def _command(text: str, i: int, markdown: bool = False) -> tuple[str, int]:
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
        num, j = _argument(text, j)
        den, j = _argument(text, j)
        a, b = _math(num).strip(), _math(den).strip()
        if name == "binom":
            return f"C({a}, {b})", j
        return VULGAR.get((a, b)) or f"{_wrap(a)}/{_wrap(b)}", j
    if name == "sqrt":
        index = "2"
        while j < len(text) and text[j] == " ":
            j += 1
        if j < len(text) and text[j] == "[":
            close = text.find("]", j)
            if close < 0:
                raise Incomplete()
            index, j = _math(text[j + 1:close]).strip(), close + 1
        arg, j = _argument(text, j)
        root = ROOTS.get(index) or _script(index, SUPERSCRIPT, "^") + "√"
        return root + _wrap(_math(arg)), j
    if name == "boxed":
        arg, j = _argument(text, j)
        inner = _math(arg, markdown).strip()
        boxed = f"{BOX[0]}{inner}{BOX[1]}"
        return (f"**{boxed}**" if markdown else boxed), j
    if name in TEXT_ARG:
        arg, j = _argument(text, j)
        return arg, j
    if name in STYLE_ARG:
        arg, j = _argument(text, j)
        return _math(arg, markdown), j
    if name == "mathbb":
        arg, j = _argument(text, j)
        return "".join(DOUBLE_STRUCK.get(c, c) for c in arg), j
    if name in ACCENTS:
        arg, j = _argument(text, j)
        base = _math(arg, markdown)
        return (base + ACCENTS[name] if len(base) == 1 else f"{base}{ACCENTS[name]}"), j
    if name in ("begin", "end"):
        _, j = _argument(text, j)
        return ("" if name == "begin" else ""), j
    if name == "not":
        arg, j = _argument(text, j)
        return _math(arg) + "\u0338", j
    if name == "pmod":
        arg, j = _argument(text, j)
        return f" (mod {_math(arg)})", j
    return text[i:j], j


def _math(s: str, markdown: bool = False) -> str:
    """Convert the inside of a math span (complete: its closing delimiter was seen)."""
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
                converted, i = _command(s, i, markdown)
                out.append(converted)
            elif c in "^_":
                arg, i = _argument(s, i + 1)
                inner = _math(arg, markdown)
                out.append(_script(inner, SUPERSCRIPT if c == "^" else SUBSCRIPT, c))
            elif c == "{":
                arg, i = _group(s, i)
                out.append(_math(arg, markdown))
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
        except Incomplete:
            out.append(c)  # unbalanced inside complete math: show what is there
            i += 1
    return "".join(out)


class LatexStream:
    """Converts a growing text for append-only display.

    `feed(delta)` returns (text to append, replacement): normally the converted text that became
    stable; if a later fragment changes how earlier stable text converts (rare), `replacement` is
    the whole converted text so far and the caller redraws. Conversion restarts at each blank line
    outside code so the work per fragment stays bounded by the current paragraph.
    """

    def __init__(self, markdown: bool = False) -> None:
        self.markdown = markdown
        self.raw = ""
        self.out = ""  # converted text handed out so far
        self.base = 0  # raw index where the current paragraph starts
        self.base_out = 0  # len(self.out) at that point
        self.in_fence = False  # does the current paragraph start inside a code fence

    def feed(self, delta: str, final: bool = False) -> tuple[str, str | None]:
        self.raw += delta
        tail = self.raw[self.base:]
        converted, covered = convert(tail, final=final, markdown=self.markdown, in_fence=self.in_fence)
        shown = self.out[self.base_out:]
        if converted.startswith(shown):
            append, replacement = converted[len(shown):], None
            self.out += append
        else:
            self.out = self.out[:self.base_out] + converted
            append, replacement = "", self.out
        # Move the paragraph start past the last blank line of the covered part, so later feeds
        # only reconvert the open paragraph.
        cut = tail.rfind("\n\n", 0, covered)
        if cut >= 0 and not final:
            head = tail[:cut + 2]
            head_out, head_covered = convert(head, final=True, markdown=self.markdown, in_fence=self.in_fence)
            if head_covered == len(head) and self.out[self.base_out:].startswith(head_out):
                self.in_fence ^= _fence_count(head, self.in_fence) % 2 == 1
                self.base += len(head)
                self.base_out += len(head_out)
        return append, replacement

    def finish(self) -> tuple[str, str | None]:
        return self.feed("", final=True)


def _fence_count(text: str, in_fence: bool) -> int:
    return len(re.findall(r"^ {0,3}(?:```|~~~)", text, flags=re.M))
