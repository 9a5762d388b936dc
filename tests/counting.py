"""Counting what the model computes: a wrapper that counts the tokens fed to it (prefill and decode), so
tests can assert exactly what a KV cache saved; and the texts of a response's events."""

from __future__ import annotations


class CountingModel:
    """The model, counting the tokens it is fed (prefill and decode): what the cache saved is not fed."""

    def __init__(self, model) -> None:
        self.model, self.fed = model, 0

    def __call__(self, inputs, *args, **kwargs):
        self.fed += inputs.shape[-1]
        return self.model(inputs, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.model, name)


_counted: dict = {}  # one counting model per loaded model: a cache belongs to one model


def run_counted(engine, request, cache):
    """(events, tokens fed to the model) of one generation on the engine thread with `cache`."""
    from workbench.engine.generate import stream_reasoning

    def go(loaded):
        if id(loaded) not in _counted:
            _counted[id(loaded)] = type(loaded)(**{**loaded.__dict__, "model": CountingModel(loaded.model)})
        counted = _counted[id(loaded)]
        counted.model.fed = 0
        return list(stream_reasoning(counted, request, cache=cache)), counted.model.fed

    return engine.call(go).result(timeout=120)


def texts(events) -> tuple[str, str]:
    """(thinking, answer) of a response's events; what the engine wrote counts as thinking."""
    from workbench.engine.events import Answer, Steered, Think

    think = "".join(e.text for e in events if isinstance(e, (Think, Steered)))
    return think, "".join(e.text for e in events if isinstance(e, Answer))
