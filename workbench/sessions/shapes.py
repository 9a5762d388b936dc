"""The shapes of a response's JSON columns (`sampling`, `stats`, `inspection`), and `clean`, which keeps
only what fits them.

Imports are untrusted and an old store may hold anything, so both go through `clean`: on import (what
does not fit is dropped, the text is kept) and on every read from the store, so `show`, the exports and
the app can index what they get without checking. Numbers must be finite; a dict missing a required
key is dropped whole (a `language` that is `flagged` without its share is no report at all).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from workbench.engine.events import Stats


@dataclass(frozen=True)
class Of:
    """A shape around another: "optional" (the key may be absent; checked when present), "nullable",
    "list" (of it), "dict" (string keys to it)."""

    how: str
    shape: object


def Optional(shape) -> Of:  # noqa: N802 - reads as a type in the tables below
    return Of("optional", shape)


def Nullable(shape) -> Of:  # noqa: N802
    return Of("nullable", shape)


def ListOf(shape) -> Of:  # noqa: N802
    return Of("list", shape)


def DictOf(shape) -> Of:  # noqa: N802
    return Of("dict", shape)


NUMBER, INT, TEXT, BOOL = "number", "int", "text", "bool"
SCALAR = "scalar"  # null, a bool, a finite number or a string
MARKER = "marker"  # [start, end, kind]

_OF_ANNOTATION = {"int": INT, "float": NUMBER, "str": TEXT, "bool": BOOL}
STATS = {f.name: Optional(_OF_ANNOTATION[getattr(f.type, "__name__", f.type)]) for f in fields(Stats)}
STATS.update(thinking_tps=Optional(NUMBER), answer_tps=Optional(NUMBER), generation_tps=Optional(NUMBER),
             draft_acceptance=Optional(NUMBER),
             error=Optional(TEXT),
             # where the engine wrote into the thinking (recorder.py): kind, character offset, its text
             steered=Optional(ListOf({"kind": TEXT, "at": INT, "text": TEXT})))
INSPECTION = {
    "tokens": Optional({
        "thinking": Nullable(INT), "answer": Nullable(INT), "thinking_o200k": Nullable(INT),
        "answer_o200k": Nullable(INT), "thinking_share": Nullable(NUMBER), "note": Optional(Nullable(TEXT)),
        "cost": Optional({"hosted_usd": DictOf(NUMBER), "local_wh": NUMBER, "local_usd": NUMBER}),
    }),
    "markers": Optional({"counts": DictOf(INT), "total": INT, "positions": ListOf(MARKER)}),
    "steps": Optional(ListOf({"start": INT, "end": INT, "marker": Nullable(TEXT), "title": TEXT})),
    "language": Optional({"prompt_script": TEXT, "other_scripts": DictOf(INT), "other_share": NUMBER,
                          "flagged": BOOL}),
    "loops": Optional({"repeated_ngrams": INT, "duplicate_paragraphs": INT, "loop": BOOL,
                       "loop_at": Nullable(INT)}),
    "consistency": Optional({"thinking_answer": Nullable(TEXT), "final_answer": Nullable(TEXT),
                             "consistent": Nullable(BOOL), "method": Nullable(TEXT)}),
}
SAMPLING = DictOf(SCALAR)
COLUMNS = {"sampling": SAMPLING, "stats": STATS, "inspection": INSPECTION}

LARGEST_INT = 2**63 - 1  # SQLite's, and far beyond any count or time
_MISSING = object()


def clean(column: str, value):
    """`value` cut to the shape of `column` ("sampling", "stats" or "inspection"), or None if nothing fits."""
    out = _fit(COLUMNS[column], value)
    return None if out is _MISSING else out


def _fit(shape, value):
    """`value` as `shape` (wrong parts dropped where the shape allows), or _MISSING if it does not fit."""
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return _MISSING
        out = {}
        for key, inner in shape.items():
            got = _fit(inner, value[key]) if key in value else _MISSING
            if got is not _MISSING:
                out[key] = got
            elif not (isinstance(inner, Of) and inner.how == "optional"):
                return _MISSING
        return out
    if isinstance(shape, Of):
        if shape.how == "optional":
            return _fit(shape.shape, value)
        if shape.how == "nullable":
            return None if value is None else _fit(shape.shape, value)
        if shape.how == "dict" and isinstance(value, dict):
            fitted = ((text(k), _fit(shape.shape, v)) for k, v in value.items() if isinstance(k, str))
            return {k: v for k, v in fitted if v is not _MISSING}
        if shape.how == "list" and isinstance(value, list):
            return [v for v in (_fit(shape.shape, item) for item in value) if v is not _MISSING]
        return _MISSING
    if not _is(shape, value):
        return _MISSING
    return text(value) if isinstance(value, str) else value


def text(s: str) -> str:
    """JSON may carry lone surrogates (\\ud800) that cannot be printed or stored as UTF-8: replaced."""
    return s.encode("utf-8", "replace").decode("utf-8")


def _is(kind: str, value) -> bool:
    if kind == BOOL:
        return isinstance(value, bool)
    if kind == TEXT:
        return isinstance(value, str)
    if kind == INT:  # bounded: readers divide and format these as floats
        return isinstance(value, int) and not isinstance(value, bool) and -LARGEST_INT <= value <= LARGEST_INT
    if kind == NUMBER:
        return _is(INT, value) or (isinstance(value, float) and math.isfinite(value))
    if kind == SCALAR:
        return value is None or isinstance(value, (bool, str)) or _is(NUMBER, value)
    if kind == MARKER:
        return (isinstance(value, list) and len(value) == 3 and _is(INT, value[0]) and _is(INT, value[1])
                and isinstance(value[2], str))
    raise ValueError(kind)
