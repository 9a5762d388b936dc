"""Modal screens: the model picker and the sampling settings. Each has its own .tcss."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, ProgressBar, Static
from textual.widgets.option_list import Option

from workbench.engine.events import Decoding, Sampling


def _size(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


HERE = Path(__file__).parent  # .tcss files beside the code (absolute, so subclasses elsewhere work)

PULL = "pull:"  # option ids of catalog models start with this; local ones are folder paths


class ModelPicker(ModalScreen[str | None]):
    """Local models (`workbench.models.local.list_local()`), then catalog models that fit this machine
    (`workbench.models.recommend` Fits): Enter picks one (a folder path, or "pull:NAME"), Esc cancels."""

    CSS_PATH = HERE / "model_picker.tcss"
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, models, current: str | None = None, catalog=()) -> None:
        super().__init__()
        self.models = list(models)
        self.current = current
        self.catalog = list(catalog)

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
            if self.catalog:
                options.append(Option(Text("Fits this machine (Enter pulls it):", style="italic"), disabled=True))
            for f in self.catalog:
                label = Text(f"⤓ {f.entry.name}", style="bold")
                label.append(f"  {f.entry.title} · {_size(f.disk_needed)} download"
                             f" · needs {_size(f.memory_needed)} of {_size(f.memory_usable)}", style="dim")
                options.append(Option(label, id=PULL + f.entry.name))
            yield OptionList(*options, id="models")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)


class PullScreen(ModalScreen[None]):
    """A pull's progress bar; the app's thread worker feeds it (`progress`). Esc hides it: the
    download goes on and a notification says when it is done."""

    CSS_PATH = HERE / "model_picker.tcss"
    BINDINGS = [Binding("escape", "dismiss(None)", "Hide")]

    def __init__(self, name: str) -> None:
        super().__init__()
        self.model = name

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(Text(f"Pulling {self.model}"), id="title")
            yield ProgressBar(id="pull-progress", show_eta=True)
            yield Static("asking the hub …", id="pull-bytes", markup=False)

    def progress(self, done: int, total: int) -> None:
        self.query_one(ProgressBar).update(total=total or None, progress=done)
        self.query_one("#pull-bytes", Static).update(f"{_size(done)} of {_size(total)}" if total else _size(done))


class SettingsScreen(ModalScreen["tuple[Sampling, Decoding] | None"]):
    """Temperature, top-p, max tokens, seed; the context, KV-cache bits and the draft model (`Decoding`). Empty
    means the model profile's default (the context: the model's own)."""

    CSS_PATH = HERE / "settings.tcss"
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]
    FIELDS = (("temperature", "Temperature", "number"), ("top_p", "Top-p", "number"),
              ("max_tokens", "Max tokens", "integer"), ("seed", "Seed", "integer"))
    DECODING_FIELDS = (("context", "Context tokens", "integer"),
                       ("kv_bits", "KV bits", "integer"), ("kv_start", "KV from token", "integer"),
                       ("draft", "Draft model", "text"), ("draft_tokens", "Draft tokens", "integer"),
                       ("draft_mode", "Draft mode", "text"))

    def __init__(self, sampling: Sampling, defaults: Sampling, decoding: Decoding = Decoding(),
                 decoding_defaults: Decoding = Decoding()) -> None:
        super().__init__()
        self.sampling, self.defaults = sampling, defaults
        self.decoding, self.decoding_defaults = decoding, decoding_defaults

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="dialog"):
            yield Label("Sampling settings (empty: the model's default)", id="title")
            for name, label, kind in self.FIELDS:
                default = getattr(self.defaults, name)
                yield from self.field(name, label, kind, getattr(self.sampling, name), "field",
                                      "random" if name == "seed" and default is None else f"default: {default}")
            yield Label("Decoding: context (prompt and response tokens); KV cache 4 or 8 bits (0 off); a draft model "
                        "sharing the tokenizer (on/auto)",
                        classes="section")
            for name, label, kind in self.DECODING_FIELDS:
                default = getattr(self.decoding_defaults, name)
                yield from self.field(name, label, kind, getattr(self.decoding, name), "field compact",
                                      f"default: {default if default not in (None, '') else 'none'}")
            yield Static("", id="problem", markup=False)
            with Horizontal(id="buttons"):
                yield Button("Save", variant="primary", id="save")
                yield Button("Cancel", id="cancel")

    @staticmethod
    def field(name: str, label: str, kind: str, value, classes: str, placeholder: str) -> ComposeResult:
        with Horizontal(classes=classes):
            yield Label(label)
            yield Input("" if value is None else str(value), type=kind, id=name, placeholder=placeholder)

    def read_decoding(self) -> Decoding:
        """The decoding settings in the form; ValueError names the field that is wrong."""
        from workbench.engine.profiles import decoding_problem

        values: dict = {}
        for name, label, kind in self.DECODING_FIELDS:
            text = self.query_one(f"#{name}", Input).value.strip()
            if not text:
                values[name] = None
            elif kind == "integer":
                try:
                    values[name] = int(text)
                except ValueError:
                    raise ValueError(f"{label}: '{text}' is not a whole number") from None
            else:
                values[name] = "" if name == "draft" and text.lower() in ("none", "off") else text
        decoding = Decoding(**values)
        problem = decoding_problem(decoding)
        if problem:
            raise ValueError(problem)
        return decoding

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
            sampling, decoding = self.read(), self.read_decoding()
        except ValueError as e:
            self.query_one("#problem", Static).update(str(e))
            self.notify(str(e), severity="error", markup=False)
            return
        self.dismiss((sampling, decoding))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "save":
            self.save()
        else:
            self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.save()
