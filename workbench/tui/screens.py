"""Modal screens: the model picker and the sampling settings. Each has its own .tcss."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from workbench.engine.events import Sampling


def _size(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


HERE = Path(__file__).parent  # .tcss files beside the code (absolute, so subclasses elsewhere work)

class ModelPicker(ModalScreen[str | None]):
    """Local models (`workbench.models.local.list_local()`); Enter picks one, Esc cancels."""

    CSS_PATH = HERE / "model_picker.tcss"
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, models, current: str | None = None) -> None:
        super().__init__()
        self.models = list(models)
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("Pick a model", id="title")
            if not self.models:
                yield Static("No local models. Get one with `workbench pull NAME` or `workbench import`.",
                             markup=False)
            options = []
            for m in self.models:
                label = Text(m.name, style="bold")
                label.append(f"  {m.model_type} {m.quantization or 'full precision'} · {_size(m.size_bytes)}"
                             f" · {m.source}{' · default' if m.default else ''}"
                             f"{' · loaded' if m.name == self.current else ''}", style="dim")
                options.append(Option(label, id=m.path))
            yield OptionList(*options, id="models")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)


class SettingsScreen(ModalScreen[Sampling | None]):
    """Temperature, top-p, max tokens, seed. Empty means the model profile's default."""

    CSS_PATH = HERE / "settings.tcss"
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]
    FIELDS = (("temperature", "Temperature", "number"), ("top_p", "Top-p", "number"),
              ("max_tokens", "Max tokens", "integer"), ("seed", "Seed", "integer"))

    def __init__(self, sampling: Sampling, defaults: Sampling) -> None:
        super().__init__()
        self.sampling = sampling
        self.defaults = defaults

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("Sampling settings (empty: the model's default)", id="title")
            for name, label, kind in self.FIELDS:
                value = getattr(self.sampling, name)
                default = getattr(self.defaults, name)
                with Horizontal(classes="field"):
                    yield Label(label)
                    yield Input("" if value is None else str(value), type=kind, id=name,
                                placeholder="random" if name == "seed" and default is None else f"default: {default}")
            yield Static("", id="problem", markup=False)
            with Horizontal(id="buttons"):
                yield Button("Save", variant="primary", id="save")
                yield Button("Cancel", id="cancel")

    def read(self) -> Sampling:
        """The settings in the form; ValueError names the field that is out of range."""
        values = {}
        for name, label, kind in self.FIELDS:
            text = self.query_one(f"#{name}", Input).value.strip()
            if not text:
                values[name] = None
                continue
            try:
                value = int(text) if kind == "integer" else float(text)
            except ValueError:
                raise ValueError(f"{label}: '{text}' is not a number") from None
            ok = {"temperature": value >= 0, "top_p": 0 < value <= 1, "max_tokens": value >= 1,
                  "seed": value >= 0}[name]
            if not ok:
                raise ValueError(f"{label}: {text} is out of range")
            values[name] = value
        return Sampling(**values)

    def save(self) -> None:
        try:
            sampling = self.read()
        except ValueError as e:
            self.query_one("#problem", Static).update(str(e))
            self.notify(str(e), severity="error", markup=False)
            return
        self.dismiss(sampling)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "save":
            self.save()
        else:
            self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.save()
