"""The first screen: what the default model is, prompts to try, and the best model this machine can pull.

Shown in the Answer pane until the first turn is there (CSS: only while it is the pane's last child).
The best fit comes from the catalog and this machine's memory and free disk (`workbench models
recommend`'s logic, through `models.recommend.fits_to_pull`, as the picker), computed in a thread worker: nothing
blocks the screen and nothing touches the network.
"""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.widgets import Static

from workbench.terminal import printable

EXAMPLES = ("What is 12+30?", "What is 1234 + 5678?")


class Welcome(Static):
    DEFAULT_CSS = """
    Welcome { display: none; padding: 1 1; }
    Welcome:last-child { display: block; }
    """

    def __init__(self) -> None:
        super().__init__(self.content("checking the catalog against this machine …"), id="welcome", markup=False)
        self.best: str | None = None  # the line about the best fit, once known

    @staticmethod
    def content(best: str) -> Text:
        text = Text()
        text.append("Welcome to Reasoning Workbench\n\n", style="bold")
        text.append("r1-nano", style="bold")
        text.append(" (the default) is a 1M-parameter demo model shipped with the app: it does small "
                    "arithmetic, thinking first (the Thinking pane) and then answering here.\n\n")
        text.append("Try: ")
        for i, example in enumerate(EXAMPLES):
            text.append(("   ·   " if i else "") + example, style="bold")
        text.append("\n\n")
        text.append(best)
        return text

    def on_mount(self) -> None:
        self._find_best()

    @work(thread=True, exit_on_error=False, group="welcome")
    def _find_best(self) -> None:
        line = best_fit_line()
        self.best = line
        self.app.call_from_thread(self.update, self.content(line))


def best_fit_line() -> str:
    """One line naming the best catalog model that fits this machine and how to pull it."""
    from workbench.models.local import list_local
    from workbench.models.recommend import gb
    from workbench.models.recommend import fits_to_pull

    try:
        local = {m.name for m in list_local()}
    except Exception:  # noqa: BLE001 - an unreadable models folder must not cost the welcome
        local = set()
    fits = fits_to_pull(local)
    if not fits:
        return "For real questions, no catalog model fits this machine's memory and free disk (or all are here: ctrl+o)."
    best = fits[0]
    return (f"For real questions: {printable(best.entry.name)} is the best model that fits this machine "
            f"({gb(best.disk_needed)} download, needs {gb(best.memory_needed)} of memory). "
            f"Press ctrl+o, then Enter on it, to pull and load it.")
