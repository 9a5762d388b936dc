"""Token accounting: the model's tokenizer, tiktoken's o200k_base for comparison with hosted APIs, costs.

tiktoken downloads o200k_base at first use, which cannot work offline; its BPE file ships in
`data/` (byte-identical, checked by hash) and is loaded from there. Without tiktoken the
o200k count is None and `o200k_note()` says why. Loading the table takes ~0.5-1 s, so responses are
recorded without o200k counts unless it is loaded already; `with_o200k` counts them when shown.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

O200K_FILE = Path(__file__).parent / "data" / "o200k_base.tiktoken.gz"
O200K_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"  # tiktoken's expected hash

_lock = threading.Lock()
_o200k: list = []  # [encoding or None, note]


def _load_o200k():
    import tiktoken
    from tiktoken_ext import openai_public
    from unittest import mock

    data = gzip.decompress(O200K_FILE.read_bytes())
    if hashlib.sha256(data).hexdigest() != O200K_SHA256:
        raise ValueError(f"{O200K_FILE}: hash mismatch")
    ranks = {base64.b64decode(tok): int(rank) for tok, rank in (line.split() for line in data.splitlines() if line)}
    # tiktoken's own definition (pattern, special tokens), with the ranks from our file instead of the network.
    with mock.patch.object(openai_public, "load_tiktoken_bpe", lambda *a, **k: ranks):
        spec = openai_public.o200k_base()
    return tiktoken.Encoding(**spec)


def o200k(load: bool = True):
    """The o200k_base encoding, or None (then `o200k_note()` says why). Loaded once (~0.5-1 s of Python).
    `load=False`: only if it is loaded already; never loads it, nor waits for a load under way."""
    if not load:
        return _o200k[0] if _o200k else None
    with _lock:
        if not _o200k:
            try:
                _o200k[:] = [_load_o200k(), ""]
            except Exception as e:  # noqa: BLE001 - degrade to "no hosted-API count", with the reason
                _o200k[:] = [None, f"o200k_base token counts unavailable ({type(e).__name__}: {e})"]
                print(f"workbench: note: {_o200k[1]}", file=sys.stderr)
        return _o200k[0]


def o200k_note() -> str:
    o200k()
    return _o200k[1]


def count_o200k(text: str) -> int | None:
    enc = o200k()
    return None if enc is None else len(enc.encode(text, disallowed_special=()))


def with_o200k(tokens: dict, thinking: str, answer: str, settings: "CostSettings | None" = None,
               load: bool = True) -> bool:
    """Fill in the o200k_base counts of an inspection's `tokens` (and the hosted costs, billed by them) if
    they are missing: recording leaves them out unless the table is loaded already (loading it would
    delay the end of every response), and whoever shows them counts them from the text. `load=False`:
    only if the table is loaded. Returns whether `tokens` changed (worth storing)."""
    if tokens.get("thinking_o200k") is not None or (not load and o200k(load=False) is None):
        return False
    enc = o200k()
    if enc is None:
        changed = tokens.get("note") != _o200k[1]
        tokens["note"] = _o200k[1]
        return changed
    ot, oa = count_o200k(thinking), count_o200k(answer)
    tokens.update(thinking_o200k=ot, answer_o200k=oa, note="")
    if tokens.get("thinking") is None:
        tokens["thinking_share"] = round(ot / (ot + oa), 4) if ot + oa else 0.0
    if isinstance(tokens.get("cost"), dict):
        if settings is None:
            from workbench.errors import UserError

            try:
                settings = CostSettings.load()
            except UserError:  # a bad price table: the counts are still right, the costs stay as stored
                return True
        tokens["cost"]["hosted_usd"] = costs(ot + oa, 0.0, settings)["hosted_usd"]
    return True


# ---- costs ----------------------------------------------------------------------------------

# Hosted-API list prices, $ per million OUTPUT tokens (thinking is billed as output). Edit with
# $WORKBENCH_HOME/prices.toml: `[prices]` then `"name" = 2.19`.
DEFAULT_PRICES: dict[str, float] = {
    "deepseek-reasoner": 2.19,
    "o3": 8.00,
    "o4-mini": 4.40,
}


@dataclass
class CostSettings:
    prices: dict = field(default_factory=lambda: dict(DEFAULT_PRICES))  # name -> $/M output tokens
    watts: float = 0.0  # the machine's draw while generating; 0 means local cost is zero
    usd_per_kwh: float = 0.0

    @classmethod
    def from_dict(cls, d: dict) -> "CostSettings":
        return cls(prices={str(k): float(v) for k, v in d.get("prices", DEFAULT_PRICES).items()},
                   watts=float(d.get("watts", 0.0)), usd_per_kwh=float(d.get("usd_per_kwh", 0.0)))

    @classmethod
    def load(cls) -> "CostSettings":
        from workbench.errors import UserError
        from workbench.paths import workbench_home

        path = workbench_home() / "prices.toml"
        if not path.exists():
            return cls()
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover
            import tomli as tomllib

        try:
            return cls.from_dict(tomllib.loads(path.read_text(encoding="utf-8")))
        except (ValueError, TypeError, AttributeError, UnicodeDecodeError) as e:
            raise UserError(f"{path}: not a valid price table ({str(e).splitlines()[0]})") from None


def costs(output_tokens: int, seconds: float, settings: CostSettings) -> dict:
    """Estimated hosted cost of the same output tokens per API, and the local energy (and its price)."""
    wh = settings.watts * seconds / 3600
    return {
        "hosted_usd": {name: round(output_tokens * price / 1e6, 6) for name, price in settings.prices.items()},
        "local_wh": round(wh, 4),
        "local_usd": round(wh / 1000 * settings.usd_per_kwh, 6),
    }
