"""LaTeX -> Unicode (workbench/tui/latex.py): a table of cases, plus streaming properties."""

import pytest
from hypothesis import given, settings, strategies as st

from workbench.tui.latex import LatexStream, convert, to_unicode

CASES = [
    # fractions
    (r"\(\frac{1}{2}\)", "½"),
    (r"\(\frac{3}{4}\)", "¾"),
    (r"\(\frac{5}{7}\)", "5/7"),
    (r"\(\frac{a+b}{c}\)", "(a+b)/c"),
    (r"\(\dfrac{x}{y+1}\)", "x/(y+1)"),
    (r"$\frac{\sqrt{2}}{2}$", "√2/2"),
    # roots
    (r"\(\sqrt{2}\)", "√2"),
    (r"\(\sqrt{x+1}\)", "√(x+1)"),
    (r"\(\sqrt[3]{8}\)", "∛8"),
    (r"\(\sqrt[5]{x}\)", "⁵√x"),
    # powers and subscripts
    (r"$x^2$", "x²"),
    (r"$x^{10}$", "x¹⁰"),
    (r"$e^{-i\pi}$", "e^(−iπ)"),
    (r"$a_{n+1} = a_n^2$", "aₙ₊₁ = aₙ²"),
    (r"$x_{ij}$", "xᵢⱼ"),
    (r"$2^{q}$", "2^q"),
    # boxed
    (r"The answer is \boxed{42}.", "The answer is ⟦42⟧."),
    (r"\[\boxed{\frac{1}{3}}\]", "⟦⅓⟧"),
    (r"$\boxed{x = 5}$", "⟦x = 5⟧"),
    # symbols and text
    (r"$3 \times 4 \cdot 2 \div 6 \pm 1$", "3 × 4 · 2 ÷ 6 ± 1"),
    (r"$a \leq b \geq c \neq d \approx e$", "a ≤ b ≥ c ≠ d ≈ e"),
    (r"$\alpha + \beta = \Omega$", "α + β = Ω"),
    (r"$x \in \mathbb{R}, n \to \infty$", "x ∈ ℝ, n → ∞"),
    (r"$\sum_{i=1}^{n} i$", "∑ᵢ₌₁ⁿ i"),
    (r"$\text{area} = \pi r^2$", "area = π r²"),
    (r"$\left( x \right)$", "( x )"),
    (r"$\sin x + \log y$", "sin x + log y"),
    (r"$90^\circ$", "90°"),
    (r"$\binom{5}{2}$", "C(5, 2)"),
    (r"$$x = 1$$", "x = 1"),
    (r"\[ y = 2 \]", "y = 2"),
    # left alone: prose dollars, code, unknown commands, markdown escapes
    ("costs $5 and $10 today", "costs $5 and $10 today"),
    ("a $ b", "a $ b"),
    ("use `$x^2$` here", "use `$x^2$` here"),
    ("```\n$x^2$ \\frac{1}{2}\n```\nthen $x^2$", "```\n$x^2$ \\frac{1}{2}\n```\nthen x²"),
    (r"\unknown{x}", r"\unknown{x}"),
    (r"snake_case and 2^10 in prose", "snake_case and 2^10 in prose"),
    (r"\$5 and \_x", r"\$5 and \_x"),
    # unfinished at the end of the text: shown as written
    (r"so \boxed{4", r"so \boxed{4"),
    (r"so \(x^2", r"so \(x^2"),
]


@pytest.mark.parametrize("latex,expected", CASES)
def test_table(latex, expected):
    assert to_unicode(latex) == expected


def test_markdown_mode_makes_boxed_bold():
    assert to_unicode(r"so \boxed{42}", markdown=True) == "so **⟦42⟧**"


@pytest.mark.parametrize("text,held_from", [
    (r"the answer is \boxed{4", 14), (r"so \(x^2", 3), ("so $x", 3), ("so \\fra", 3), ("a `code", 2),
    (r"x \frac{1}{", 2), ("done.", 5),
])
def test_unfinished_constructs_are_held_back(text, held_from):
    out, covered = convert(text, final=False)
    assert covered == held_from
    assert out == to_unicode(text[:held_from])


TEXTS = [
    "Let me compute \\(\\frac{1}{2} + \\frac{1}{3}\\).\n\nSo $x^2 = 4$ and \\boxed{\\frac{5}{6}}.\n",
    "```python\nprint('$x$')\n\n```\n\nThen \\[\\sqrt{2}\\] and `a $b$`.",
    "Prices: $5 and $10.\n\n\\boxed{15}",
]


@pytest.mark.parametrize("text", TEXTS)
@given(cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=12))
@settings(max_examples=40, deadline=None)
def test_streaming_in_any_pieces_ends_like_the_whole(text, cuts):
    """However the text is split, appended output (plus any redraws) equals converting it whole."""
    stream = LatexStream(markdown=True)
    shown = ""
    points = sorted({min(c, len(text)) for c in cuts})
    for a, b in zip([0, *points], [*points, len(text)]):
        append, replacement = stream.feed(text[a:b])
        shown = replacement if replacement is not None else shown + append
    append, replacement = stream.finish()
    shown = replacement if replacement is not None else shown + append
    assert shown == to_unicode(text, markdown=True)


# ---- bounded work: counted, not timed ----------------------------------------------------------

import sys  # noqa: E402

from workbench.tui import latex  # noqa: E402


def conversion_work(monkeypatch, run) -> int:
    """Characters handed to the converter's scans (`convert` from where it starts, `_math`), summed."""
    work = [0]
    real_convert, real_math = latex._convert, latex._math

    def counted_convert(text, i, *a, **k):
        work[0] += len(text) - i
        return real_convert(text, i, *a, **k)

    def counted_math(s, *a, **k):
        work[0] += len(s)
        return real_math(s, *a, **k)

    monkeypatch.setattr(latex, "_convert", counted_convert)
    monkeypatch.setattr(latex, "_math", counted_math)
    run()
    monkeypatch.undo()
    return work[0]


def stream(opener: str, n: int, delta: str = "x") -> None:
    s = LatexStream(markdown=True)
    s.feed("So " + opener)
    for _ in range(n):
        s.feed(delta)
    s.finish()


@pytest.mark.parametrize("opener", ["\\boxed{", "$", "\\(", "$$", "`", "", "```\n"])
@pytest.mark.parametrize("delta", ["x", "}{ ", "a b"])
def test_an_unclosed_construct_then_many_small_deltas_costs_linear_work(monkeypatch, opener, delta):
    """An unclosed `\\boxed{` or `$` then 8,000 small deltas cost 12-16 s: the open construct was
    converted again on every delta. (One long paragraph without blank lines likewise.)"""
    small = conversion_work(monkeypatch, lambda: stream(opener, 2000, delta))
    large = conversion_work(monkeypatch, lambda: stream(opener, 4000, delta))
    assert large <= 2.2 * small, (small, large)


@pytest.mark.parametrize("closed", [False, True])
def test_deeply_nested_fractions_cost_linear_work_and_no_recursion_error(monkeypatch, closed):
    """50,000 nested `\\frac{` froze the app (1,000 took 0.33 s, 2,000 took 1.9 s)."""
    def text(n):
        return "$" + "\\frac{" * n + ("1}{2}" * n if closed else "") + "$"

    small = conversion_work(monkeypatch, lambda: to_unicode(text(1000)))
    large = conversion_work(monkeypatch, lambda: to_unicode(text(2000)))
    assert large <= 2.2 * small, (small, large)
    out = to_unicode(text(50_000))  # nesting beyond latex.MAX_DEPTH is shown as written, not recursed into
    assert out and len(out) <= len(text(50_000))
    assert to_unicode("$" + "\\frac{1}{" * 3 + "2" + "}" * 3 + "$") == "1/(1/½)"  # shallow nesting still converts


def test_a_construct_longer_than_the_span_limit_is_shown_as_written_streamed_or_whole():
    text = "so \\boxed{" + "x" * (latex.MAX_SPAN + 10) + "} done"
    assert to_unicode(text) == text
    s = LatexStream()
    shown = "".join(s.feed(c)[0] for c in text) + s.finish()[0]
    assert shown == text


@given(st.lists(st.sampled_from(["$", "$$", "\\(", "\\)", "\\[", "\\]", "\\frac", "{", "}", "1", "x", " ", "\n",
                                 "\n\n", "`", "```", "~~~", "\\boxed", "^", "_", "5", "\\", "\\$", "a"]), max_size=40),
       st.data())
@settings(max_examples=300, deadline=None)
def test_streaming_random_text_in_any_pieces_equals_converting_it_whole_without_redraws(parts, data):
    text = "".join(parts)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=10)))
    s = LatexStream(markdown=True)
    shown = ""
    for a, b in zip([0, *cuts], [*cuts, len(text)]):
        append, replacement = s.feed(text[a:b])
        assert replacement is None  # every decision waits for what it depends on: nothing is redrawn
        shown += append
        assert s.preview() == to_unicode(text[:b], markdown=True)  # the thinking pane's growing line
    append, replacement = s.finish()
    assert replacement is None
    assert shown + append == to_unicode(text, markdown=True)


def test_a_backslash_is_never_settled_without_the_character_it_decides():
    """`\\\\$`: the dollar after a backslash opens no math, also when the stream is cut between them."""
    text = "\\\\$\\($"
    for cut in range(1, len(text)):
        s = LatexStream(markdown=True)
        s.feed(text[:cut])
        s.feed(text[cut:])
        assert s.preview() == to_unicode(text, markdown=True), cut
