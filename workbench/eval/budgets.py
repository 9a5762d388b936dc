"""Thinking budget sweeps: one problem at several thinking budgets, and the curve they make.

Budget forcing (s1): at the budget, the engine writes its budget message and `</think>`, and the
model answers. With the budgets in ascending order, the run at a budget is the run at the one
below it continued: the same thinking up to the smaller cut, then more. So a sweep generates the
thinking once: each budget continues the model's own thinking from the previous cut
(`ChatRequest.continue_thinking`, which the engine serves from its KV cache), and only the budget
message and the answer are written per budget. Once the model closes its thinking before a cut,
every larger budget gives the same response and nothing more is generated. Greedy, the outputs
are those of independent runs at each budget (tested); sampled, each continuation is seeded anew
(the answers after different cuts are different draws, as in independent runs).

A point's `seconds` is what an independent run at that budget would have taken: the thinking
time along the chain, plus this budget's prompt and answer.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from workbench.engine.events import Answer, ChatRequest, Done, Steered, Think
from workbench.errors import UserError

MAX = "max"  # the label of "no budget": the model thinks as long as it likes (within max_tokens)


def parse_budgets(text: str) -> list[int | None]:
    """"0,256,1024,max" -> [0, 256, 1024, None], ascending, no repeats; UserError names a bad entry."""
    budgets: set[int | None] = set()
    for part in str(text).split(","):
        part = part.strip().lower()
        if part in (MAX, "inf", "none"):
            budgets.add(None)
            continue
        try:
            value = int(part)
        except ValueError:
            raise UserError(f"--budgets: {part!r} is not a number of thinking tokens or 'max' "
                            "(e.g. --budgets 0,256,1024,max)") from None
        if not 0 <= value <= 10_000_000:
            raise UserError(f"--budgets: {value} is out of range (0 to 10,000,000 thinking tokens)")
        budgets.add(value)
    if len(budgets) < 2:
        raise UserError("--budgets needs at least two budgets (for one, use --thinking-budget)")
    return sorted((b for b in budgets if b is not None)) + ([None] if None in budgets else [])


def label(budget: int | None) -> str:
    return MAX if budget is None else str(budget)


@dataclass
class Point:
    """One sample at one budget, as an independent run at that budget would have ended."""

    budget: int | None
    thinking: str = ""
    answer: str = ""
    thinking_tokens: int = 0
    answer_tokens: int = 0
    seconds: float = 0.0
    finish_reason: str = "error"
    thinking_closed: bool = False
    cut: bool = False  # the engine cut the thinking at this budget
    reused: bool = False  # the model closed its thinking before this budget's cut: a smaller budget's response
    failure: str | None = None


def _read(job) -> tuple[str, str, str, object]:
    """(thinking the model wrote, or was made to go on with, before any cut; the text of the cut;
    the answer; the terminal event)."""
    own, cut, answer, end = [], [], [], None
    for end in job:
        if isinstance(end, Think) or (isinstance(end, Steered) and not end.closes):
            (cut if cut else own).append(end.text)
        elif isinstance(end, Steered):
            cut.append(end.text)
        elif isinstance(end, Answer):
            answer.append(end.text)
    return "".join(own), "".join(cut), "".join(answer), end


def sweep(engine, request: ChatRequest, budgets: list[int | None], continue_from_cuts: bool = True,
          watch=lambda job: None) -> list[Point]:
    """`request` at each budget (ascending, None last), one Point per budget. `watch(job)` sees each
    job as it starts (to cancel it). `continue_from_cuts=False`: independent runs, for engines that
    cannot continue a thinking (and for measuring what continuing saves)."""
    if not continue_from_cuts:
        return [_independent(engine, request, budget, watch) for budget in budgets]
    points: list[Point] = []
    own, own_tokens, own_seconds = "", 0, 0.0  # the thinking so far, its tokens, the time it took
    max_tokens = request.sampling.max_tokens
    for i, budget in enumerate(budgets):
        remaining = None if max_tokens is None else max_tokens - own_tokens
        if remaining is not None and remaining <= 0:  # an independent run would have ended thinking, unanswered
            point = Point(budget, own, "", own_tokens, 0, own_seconds, "length", False)
        else:
            job = engine.generate(replace(request, max_thinking_tokens=budget, continue_thinking=own or None,
                                          sampling=replace(request.sampling, max_tokens=remaining)))
            watch(job)
            more, cut, answer, end = _read(job)
            if not isinstance(end, Done):
                failure = f"generation failed: {getattr(end, 'message', end)}"
                points += [Point(b, failure=failure) for b in budgets[i:]]
                return points
            stats = end.stats
            point = Point(budget, own + more + cut, answer, own_tokens + stats.thinking_tokens, stats.answer_tokens,
                          own_seconds + stats.total_time, stats.finish_reason, stats.thinking_closed,
                          cut=stats.thinking_cut == "budget")
            if point.cut:
                own, own_tokens = own + more, own_tokens + stats.thinking_tokens
                own_seconds += stats.time_to_first_token + stats.thinking_time
                points.append(point)
                continue
        points.append(point)
        points += [replace(point, budget=b, reused=True) for b in budgets[i + 1:]]
        return points
    return points


def _independent(engine, request: ChatRequest, budget: int | None, watch) -> Point:
    job = engine.generate(replace(request, max_thinking_tokens=budget))
    watch(job)
    own, cut, answer, end = _read(job)
    if not isinstance(end, Done):
        return Point(budget, failure=f"generation failed: {getattr(end, 'message', end)}")
    s = end.stats
    return Point(budget, own + cut, answer, s.thinking_tokens, s.answer_tokens, s.total_time, s.finish_reason,
                 s.thinking_closed, cut=s.thinking_cut == "budget")


# ---- the curve ----------------------------------------------------------------------------------

def curve_points(by_budget: dict[str, list[list[dict]]], budgets: list[int | None]) -> list[dict]:
    """Per budget, over the items (each a list of sample records): accuracy with its 95% interval,
    tokens and time per answer and per correct answer, and the share of samples whose extracted
    answer differs from the budget below."""
    from workbench.eval.card import summarize

    points, previous = [], None
    for budget in budgets:
        items = by_budget[label(budget)]
        summary = summarize([{"samples": samples} for samples in items])
        samples = [s for item in items for s in item]
        correct = sum(s["correct"] for s in samples)
        tokens = sum(s["thinking_tokens"] + s["answer_tokens"] for s in samples)
        seconds = sum(s["seconds"] for s in samples)
        changed = None
        if previous is not None:
            pairs = [(a.get("extracted"), b.get("extracted")) for before, now in zip(previous, items)
                     for a, b in zip(before, now)]
            changed = sum(a != b for a, b in pairs) / len(pairs) if pairs else 0.0
        points.append({
            "budget": budget, "label": label(budget), "n": summary["n"], "n_samples": summary["n_samples"],
            "accuracy": summary["accuracy"], "ci95": summary["ci95"],
            "mean_thinking_tokens": summary["mean_thinking_tokens"], "mean_answer_tokens": summary["mean_answer_tokens"],
            "cut_share": sum(bool(s.get("cut")) for s in samples) / len(samples) if samples else 0.0,
            "mean_seconds": summary["mean_seconds"],
            "seconds_per_correct": seconds / correct if correct else None,
            "tokens_per_correct": tokens / correct if correct else None,
            "changed_from_previous": changed,
        })
        previous = items
    return points
