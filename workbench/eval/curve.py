"""Accuracy against thinking tokens, from budget-sweep report cards (`workbench evals --curve`).

One curve per card (a model, an adapter, a quantization), on one suite: each point is a budget,
at the mean thinking tokens it actually used, with its 95% interval. The legend names the weights
by their sha256 (models/identity.py), so a curve is bound to the files that made it. Drawn in the
terminal with plotext (also in the app) and saved as a PNG with matplotlib.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import UserError
from workbench.eval.card import suite_name
from workbench.jsonl import parse_line
from workbench.terminal import printable


MAX_TOKENS = 1e9  # a mean beyond this is not a measurement (and plotext overflows on huge axes)


@dataclass(frozen=True)
class CurvePoint:
    label: str  # the budget ("256", "max")
    thinking_tokens: float
    accuracy: float
    low: float
    high: float


@dataclass(frozen=True)
class Curve:
    name: str  # the legend: model, adapter, weight hashes
    suite: str
    points: tuple[CurvePoint, ...]


def _number(value, where: str, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= high:
        raise ValueError(where)
    return float(value)


def legend(card: dict) -> str:
    name = printable(str(card.get("model") or "?"))[:60]
    sha = card.get("model_sha256")
    served = card.get("served") if isinstance(card.get("served"), dict) else {}
    name += f" {printable(sha[:10])}" if isinstance(sha, str) else f" @ {printable(str(served.get('endpoint', '?')))[:60]}"
    adapter = card.get("adapter")
    if adapter:
        from workbench.models.identity import combined_sha256

        files = card.get("adapter_files") if isinstance(card.get("adapter_files"), dict) else {}
        name += f" + {printable(Path(str(adapter)).name)[:40]} {combined_sha256(files)[:10]}"
    return name


def curve_of(card: dict, where: str = "card") -> Curve:
    """The card's budget points as a Curve; UserError (one line) if it is not a sweep card or is malformed."""
    budgets = card.get("budgets") if isinstance(card, dict) else None
    if not isinstance(budgets, list) or not budgets:
        raise UserError(f"{where} is not a thinking-budget sweep (make one with `workbench eval --budgets 0,256,...,max`)")
    points = []
    try:
        for i, p in enumerate(budgets):
            if not isinstance(p, dict):
                raise ValueError(f"budgets[{i}]")
            ci95 = p.get("ci95")
            if not isinstance(ci95, list) or len(ci95) < 2:
                raise ValueError(f"budgets[{i}].ci95")
            low, high = ci95[:2]
            points.append(CurvePoint(printable(str(p.get("label", p.get("budget"))))[:20],
                                     _number(p.get("mean_thinking_tokens"), f"budgets[{i}].mean_thinking_tokens", MAX_TOKENS),
                                     _number(p.get("accuracy"), f"budgets[{i}].accuracy", 1),
                                     _number(low, f"budgets[{i}].ci95", 1), _number(high, f"budgets[{i}].ci95", 1)))
    except ValueError as e:
        raise UserError(f"{where}: {e} is missing or out of range") from None
    return Curve(legend(card), printable(str(suite_name(card)))[:60], tuple(points))


def read_curves(paths: list[str]) -> list[Curve]:
    curves = []
    for path in paths:
        try:
            card = parse_line(Path(path).read_text(encoding="utf-8"))
        except OSError as e:
            raise UserError(f"cannot read report card {path}: {e.strerror}") from None
        except (ValueError, UnicodeDecodeError):
            raise UserError(f"{path} is not a report card (not JSON)") from None
        curves.append(curve_of(card, str(path)))
    suites = sorted({c.suite for c in curves})
    if len(suites) > 1:
        raise UserError(f"the cards are of different suites ({', '.join(suites)}): one suite per plot")
    return curves


def terminal_plot(curves: list[Curve], width: int = 80, height: int = 20, color: bool = True) -> str:
    """The curves as text (plotext), each point's interval as a vertical bar."""
    import plotext as plt

    plt.clf()
    plt.plotsize(width, height)
    if not color:
        plt.clear_color()
    for curve in curves:
        xs = [p.thinking_tokens for p in curve.points]
        plt.plot(xs, [100 * p.accuracy for p in curve.points], marker="braille", label=curve.name)
        for p in curve.points:
            plt.plot([p.thinking_tokens] * 2, [100 * p.low, 100 * p.high], marker="braille")
    plt.ylim(0, 100)
    plt.xlabel("mean thinking tokens")
    plt.ylabel("accuracy %")
    plt.title(f"{curves[0].suite}: accuracy by thinking budget" if curves else "")
    text = plt.build()
    return text if color else re.sub(r"\x1b\[[0-9;]*m", "", text)


def save_png(curves: list[Curve], path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as mpl

    fig, ax = mpl.subplots(figsize=(7, 4.2))
    for curve in curves:
        xs = [p.thinking_tokens for p in curve.points]
        ys = [100 * p.accuracy for p in curve.points]
        errors = [[100 * (p.accuracy - p.low) for p in curve.points], [100 * (p.high - p.accuracy) for p in curve.points]]
        ax.errorbar(xs, ys, yerr=errors, marker="o", capsize=3, label=curve.name)
        for p, x, y in zip(curve.points, xs, ys):
            ax.annotate(p.label, (x, y), textcoords="offset points", xytext=(4, -11), fontsize=7, alpha=0.7)
    ax.set_xlabel("mean thinking tokens used")
    ax.set_ylabel("accuracy (%), 95% interval")
    ax.set_ylim(-2, 102)
    ax.set_title(f"{curves[0].suite}: accuracy by thinking budget")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    try:
        fig.savefig(path, dpi=110)
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror}") from None
    finally:
        mpl.close(fig)
    return path
