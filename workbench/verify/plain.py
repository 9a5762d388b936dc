"""Plain data across a process boundary: the only thing a completion's process may hand back.

`encode` turns None, bool, int, float, str, list, tuple, dict, set and frozenset (exactly these
types, not subclasses, nested at most MAX_DEPTH deep) into JSON-ready values; anything else raises
NotPlain. Tuples, dicts, sets and non-finite floats are tagged (`{"tuple": [...]}`) so they come
back as what they were: `(0, 1) == [0, 1]` is False in the tests, and must stay so.
`decode` is strict: it builds only those types, and refuses every shape `encode` cannot produce.

This file must stay self-contained (json and math only): the sandbox sends its source to the
sandboxed interpreters, which run with `-I -S` and cannot import workbench.
"""

import json
import math

MAX_DEPTH = 64
TAGS = ("tuple", "dict", "set", "frozenset", "float")


class NotPlain(ValueError):
    pass


def encode(value, depth=0):
    kind = type(value)
    if value is None or kind is bool or kind is str or kind is int:
        return value
    if kind is float:
        return value if math.isfinite(value) else {"float": repr(value)}
    if depth >= MAX_DEPTH:
        raise NotPlain("nested too deeply")
    if kind is list:
        return [encode(item, depth + 1) for item in value]
    if kind is tuple:
        return {"tuple": [encode(item, depth + 1) for item in value]}
    if kind is dict:
        return {"dict": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in value.items()]}
    if kind is set or kind is frozenset:
        return {kind.__name__: [encode(item, depth + 1) for item in value]}
    raise NotPlain(f"a {kind.__name__[:40]} is not plain data")


def decode(data, depth=0):
    kind = type(data)
    if data is None or kind is bool or kind is str or kind is int or kind is float:
        return data
    if depth >= MAX_DEPTH:
        raise NotPlain("nested too deeply")
    if kind is list:
        return [decode(item, depth + 1) for item in data]
    if kind is not dict or len(data) != 1 or next(iter(data)) not in TAGS:
        raise NotPlain("not an encoding of plain data")
    tag, body = next(iter(data.items()))
    if tag == "float":
        if body not in ("nan", "inf", "-inf"):
            raise NotPlain("not an encoding of plain data")
        return float(body)
    if type(body) is not list:
        raise NotPlain("not an encoding of plain data")
    items = [decode(item, depth + 1) for item in body]
    try:
        if tag == "tuple":
            return tuple(items)
        if tag == "dict":
            if any(type(pair) is not list or len(pair) != 2 for pair in items):
                raise NotPlain("not an encoding of plain data")
            return {k: v for k, v in items}
        return (set if tag == "set" else frozenset)(items)
    except TypeError as e:  # an unhashable key or member
        raise NotPlain(str(e)[:80]) from None


def dumps(value) -> str:
    """One line of JSON for a plain value; NotPlain for anything else (huge ints included)."""
    try:
        return json.dumps(encode(value))
    except (ValueError, RecursionError) as e:
        raise NotPlain(str(e)[:80] or "not plain data") from None


def loads(line):
    """The JSON object of one protocol line; NotPlain when it is not JSON."""
    try:
        return json.loads(line)
    except (ValueError, RecursionError) as e:
        raise NotPlain(f"not JSON: {str(e)[:60]}") from None
