"""`workbench train plot RUN`: a run's curves in the terminal (plotext) and as a PNG (matplotlib)."""

from __future__ import annotations

import sys
from pathlib import Path

from workbench.errors import UserError
from workbench.jsonl import parse_line


def read_metrics(run: Path) -> list[dict]:
    """metrics.jsonl rows; a torn last line (a killed run) is skipped, other bad lines are errors."""
    path = Path(run) / "metrics.jsonl"
    if not path.exists():
        raise UserError(f"{path}: missing (not a training run folder?)")
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    rows = []
    for n, line in enumerate(lines, 1):
        try:
            row = parse_line(line)
        except ValueError:
            if n == len(lines):
                break
            raise UserError(f"{path}:{n}: not JSON ({line[:60]!r})") from None
        if isinstance(row, dict) and isinstance(row.get("step"), int):
            rows.append(row)
    if not rows:
        raise UserError(f"{path}: no steps logged yet")
    return rows


def series(rows: list[dict], metric: str) -> tuple[list[int], list[float]]:
    points = [(r["step"], float(r[metric])) for r in rows if isinstance(r.get(metric), (int, float))]
    return [p[0] for p in points], [p[1] for p in points]


def plot_run(run: str | Path, metrics: list[str], png: str | Path | None = None, terminal: bool = True) -> Path:
    run = Path(run)
    rows = read_metrics(run)
    present = [m for m in metrics if series(rows, m)[0]]
    if not present:
        raise UserError(f"{run / 'metrics.jsonl'}: none of {', '.join(metrics)} logged")
    if terminal:
        import plotext as plt

        plt.clf()
        if not sys.stdout.isatty():
            plt.clear_color()
        plt.subplots(len(present), 1)
        for i, metric in enumerate(present, 1):
            plt.subplot(i, 1)
            plt.plot(*series(rows, metric), marker="braille")
            plt.title(metric)
        plt.plotsize(80, 8 * len(present))
        plt.show()
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as mpl

    fig, axes = mpl.subplots(len(present), 1, figsize=(7, 2.4 * len(present)), sharex=True, squeeze=False)
    for ax, metric in zip(axes[:, 0], present):
        ax.plot(*series(rows, metric))
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("step")
    fig.suptitle(run.name)
    fig.tight_layout()
    png = Path(png) if png else run / "curves.png"
    fig.savefig(png, dpi=100)
    mpl.close(fig)
    return png
