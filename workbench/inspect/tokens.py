"""Token accounting: the model's tokenizer, tiktoken's o200k_base for comparison with hosted APIs, costs.

tiktoken downloads o200k_base at first use, which cannot work offline; its BPE file ships in
`data/` (byte-identical, checked by hash) and is loaded from there. Without tiktoken the
o200k count is None and `o200k_note()` says why.
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


def o200k():
    """The o200k_base encoding, or None (then `o200k_note()` says why). Loaded once (~0.5 s)."""
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
