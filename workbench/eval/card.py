"""Report cards: what was measured, bound to the sha256 of the exact files that were run.

A card is `evals/<suite>-<time>.json` (+ `.md`) in the model's folder, or, for a model shipped
with the app (inside the wheel, or `models/` of a checkout, which the wheel packs) and for
read-only folders, `$WORKBENCH_HOME/evals/<model>/`. The files are identified by
`workbench.models.identity` (as sessions and manifests are). A card whose recorded hashes no longer
match the model's files is stale: `workbench evals`, `workbench models` and the next `workbench eval`
of that model ask `refresh_cards`, which writes `"stale": true` into it (loading a model writes nothing).
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from pathlib import Path

from workbench.models.identity import combined_sha256, file_hashes
from workbench.paths import workbench_home

CARD_VERSION = 1


# ---- statistics -------------------------------------------------------------------------------

def wilson(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for a proportion (successes may be fractional: pass@1 x n)."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def summarize(items: list[dict]) -> dict:
    """Accuracy numbers over items, each with `samples` (each with score/correct/tokens)."""
    samples = [s for item in items for s in item["samples"]]
    n = len(items)
    per_item = [sum(s["correct"] for s in item["samples"]) / len(item["samples"]) for item in items if item["samples"]]
    pass1 = sum(per_item) / len(per_item) if per_item else 0.0
    thinking = sum(s["thinking_tokens"] for s in samples)
    answer = sum(s["answer_tokens"] for s in samples)
    lo, hi = wilson(pass1 * n, n)  # n items: samples of one item are not independent
    return {
        "n": n,
        "n_samples": len(samples),
        "correct": sum(s["correct"] for s in samples),
        "unjudged": sum(s["score"] is None for s in samples),
        "accuracy": pass1,
        "pass_at_1": pass1,
        "ci95": [lo, hi],
        "mean_score": sum(s["score"] or 0.0 for s in samples) / len(samples) if samples else 0.0,
        "mean_thinking_tokens": thinking / len(samples) if samples else 0.0,
        "mean_answer_tokens": answer / len(samples) if samples else 0.0,
        "thinking_share": thinking / (thinking + answer) if thinking + answer else 0.0,
        "mean_seconds": sum(s["seconds"] for s in samples) / len(samples) if samples else 0.0,
    }


def paired_difference(before: dict, after: dict) -> dict:
    """Two cards on the same problems (matched by item id): how many problems each one got more of
    right, and the exact two-sided sign-test p-value of that split (McNemar's exact test when each
    card has one sample per problem). Ties carry no evidence either way and are left out."""
    score = lambda card: {it["id"]: sum(s["correct"] for s in it["samples"]) / len(it["samples"])  # noqa: E731
                          for it in card["items"] if it.get("samples")}
    a, b = score(before), score(after)
    common = sorted(a.keys() & b.keys())
    better = sum(b[i] > a[i] for i in common)
    worse = sum(b[i] < a[i] for i in common)
    n, k = better + worse, min(better, worse)
    p = min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n) if n else 1.0
    return {"problems": len(common), "better": better, "worse": worse, "p_value": p,
            "before": sum(a[i] for i in common) / max(1, len(common)),
            "after": sum(b[i] for i in common) / max(1, len(common))}


def claim_check(claimed: tuple[float, str] | None, summary: dict, suite: str) -> dict | None:
    if claimed is None:
        return None
    percent, source = claimed
    lo, hi = summary["ci95"]
    return {"suite": suite, "claimed": percent, "source": source, "measured": round(summary["accuracy"] * 100, 2),
            "ci95": [round(lo * 100, 2), round(hi * 100, 2)], "inside": lo * 100 <= percent <= hi * 100}


# ---- where cards live -------------------------------------------------------------------------

def suite_name(card: dict):
    """The suite a card measured (its `suite.name`; older cards hold the name itself); None when it does not say.
    Untrusted: callers escape what they show."""
    suite = card.get("suite")
    return suite.get("name") if isinstance(suite, dict) else suite


def write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, 0o644)  # mkstemp makes 0600; cards are for reading
    os.replace(tmp, path)


def fallback_dir(model_folder: Path) -> Path:
    return workbench_home() / "evals" / Path(model_folder).name


def is_shipped(model_folder: Path) -> bool:
    """A model that ships with the app (inside the wheel, or `models/` of a checkout, which the wheel packs)."""
    from workbench.paths import shipped_models_dir

    return shipped_models_dir().resolve() in Path(model_folder).resolve().parents


def cards_dir(model_folder: Path) -> tuple[Path, bool]:
    """(folder for cards, True if it is the $WORKBENCH_HOME fallback: a shipped or read-only model folder)."""
    preferred = Path(model_folder) / "evals"
    try:
        if is_shipped(model_folder):
            raise PermissionError("cards never go inside the package")
        preferred.mkdir(exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=preferred, prefix=".probe-", delete=True)
        probe.close()
        return preferred, False
    except OSError:
        fallback = fallback_dir(model_folder)
        fallback.mkdir(parents=True, exist_ok=True)
        return fallback, True


def served_cards_dir(endpoint: str, model: str) -> Path:
    """`$WORKBENCH_HOME/evals/served/<host_port>-<model>/`: cards of a model another machine served. Both
    names come from the user and the server (untrusted): only letters, digits, `.`, `_`, `-` reach the path."""
    from urllib.parse import urlsplit

    url = urlsplit(endpoint)
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{url.hostname or 'server'}_{url.port or ''}-{model}").strip("._")[:120]
    folder = workbench_home() / "evals" / "served" / (name or "model")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def served_card_paths() -> list[Path]:
    """Every card of a served model (`served_cards_dir`), by folder."""
    return sorted(p for p in (workbench_home() / "evals" / "served").glob("*/*.json") if not p.name.startswith("."))


def card_paths(model_folder: Path) -> list[Path]:
    paths = []
    for folder in (Path(model_folder) / "evals", fallback_dir(model_folder)):
        if folder.is_dir():
            paths += sorted(p for p in folder.glob("*.json") if not p.name.startswith("."))
    return paths


def read_card(path: Path) -> dict | None:
    from workbench.jsonl import parse_line

    try:
        card = parse_line(path.read_text(encoding="utf-8"))  # bounded nesting: a hostile card is just not a card
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return card if isinstance(card, dict) and "model_files" in card else None


def stale_reason(card: dict, model_files: dict[str, str], adapter_files: dict[str, str] | None) -> str | None:
    """Why the card no longer describes these files, or None if it still does."""
    recorded = card.get("model_files") or {}
    changed = sorted(n for n in set(recorded) | set(model_files) if recorded.get(n) != model_files.get(n))
    if changed:
        return f"model files changed: {', '.join(changed[:3])}" + (" ..." if len(changed) > 3 else "")
    if card.get("adapter_files") and adapter_files is not None and card["adapter_files"] != adapter_files:
        return "adapter files changed"
    return None


def refresh_stale(path: Path, model_files: dict[str, str]) -> dict | None:
    """Read a card, compare it with the model's current files (and its adapter's), record the result."""
    card = read_card(path)
    if card is None:
        return None
    adapter_files = None
    if card.get("adapter_files"):
        adapter = Path(card.get("adapter") or "")
        adapter_files = file_hashes(adapter) if adapter.is_dir() else {}
    return mark_stale(path, card, stale_reason(card, model_files, adapter_files))


def refresh_cards(model_folder: Path) -> list[tuple[Path, dict]]:
    """(path, card) of every card of a model, its stale mark checked against the model's files now. Cheap
    when nothing changed: the identity re-hashes only files whose size or mtime differ from the hash cache."""
    paths = card_paths(Path(model_folder))
    if not paths:
        return []
    files = file_hashes(Path(model_folder))
    return [(p, card) for p, card in ((p, refresh_stale(p, files)) for p in paths) if card is not None]


def mark_stale(path: Path, card: dict, reason: str | None) -> dict:
    """Write the stale flag (and its reason) into the card when it changed; never raises on read-only,
    never writes inside the app's package (a shipped model's cards are marked in memory only)."""
    stale = reason is not None
    if bool(card.get("stale")) != stale or card.get("stale_reason") != reason:
        card = {**card, "stale": stale, "stale_reason": reason}
        if not is_shipped(path.parent.parent):
            try:
                write_atomic(path, json.dumps(card, indent=1))
            except OSError:
                pass
    return card


def rebind_cards(model_folder: Path, old_files: dict[str, str], new_files: dict[str, str]) -> list[Path]:
    """Cards that measured `old_files` now name `new_files`: for a deliberate change to a model's files that
    does not change what the cards measured (a chat template that renders the same prompts). Only the
    identity fields change (`model_files`, `model_sha256`, and the same in the Markdown); returns the cards."""
    old_sha, new_sha = combined_sha256(old_files), combined_sha256(new_files)
    rebound = []
    for path in card_paths(Path(model_folder)):
        card = read_card(path)
        if card is None or card.get("model_sha256") != old_sha or old_sha == new_sha:
            continue
        write_atomic(path, json.dumps({**card, "model_files": new_files, "model_sha256": new_sha}, indent=1))
        md = path.with_suffix(".md")
        if md.is_file():
            text = md.read_text(encoding="utf-8").replace(old_sha, new_sha)
            head, _, tail = text.partition("\n## Files\n\n")
            adapter = [line for line in tail.splitlines() if line.startswith("- adapter ")]
            files = [f"- `{n}` `{h}`" for n, h in sorted(new_files.items())]
            write_atomic(md, head + "\n## Files\n\n" + "\n".join(files + adapter) + "\n" if tail else text)
        rebound.append(path)
    return rebound


# ---- Markdown ---------------------------------------------------------------------------------

def _pct(x: float) -> str:
    return f"{x * 100:.1f}%"


def rescored_note(card: dict) -> str:
    last = (card.get("rescored") or [None])[-1]
    return f" (re-scored from {last['from']} on {last['at']}: {last['changed']} verdicts changed)" if last else ""


def _cell(value) -> str:
    """One line of a Markdown table cell (model output and server names are untrusted)."""
    return str(value).replace("|", "\\|").replace("\n", " ").replace("\r", " ")[:120]


def server_default(value):
    """A setting a served model's card left to the server (None) says so."""
    return "the server's default" if value is None else value


def budget_table(points: list[dict] | None) -> list[str]:
    """A budget sweep's points (eval/budgets.py `curve_points`) as Markdown lines."""
    if not points:
        return []
    lines = ["## Accuracy by thinking budget", "",
             "| budget | accuracy (95% interval) | mean thinking tokens | mean answer tokens | cut at the budget "
             "| tokens per correct | seconds per correct | answers changed from the budget before |",
             "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for p in points:
        per = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
        lines.append(f"| {_cell(p['label'])} | {_pct(p['accuracy'])} ({_pct(p['ci95'][0])} to {_pct(p['ci95'][1])}) "
                     f"| {p['mean_thinking_tokens']:.0f} | {p['mean_answer_tokens']:.0f} | {_pct(p['cut_share'])} "
                     f"| {per(p['tokens_per_correct'], ',.0f')} | {per(p['seconds_per_correct'], '.2f')} "
                     f"| {'-' if p['changed_from_previous'] is None else _pct(p['changed_from_previous'])} |")
    return lines + [""]


def render_markdown(card: dict) -> str:
    s = card  # the summary numbers sit at the top level
    lo, hi = s["ci95"]
    lines = [
        f"# {_cell(card['model'])} on {card['suite']['name']}",
        "",
        f"**Accuracy (pass@1 over {card['samples']} sample{'s' if card['samples'] != 1 else ''}): {_pct(s['accuracy'])}** "
        f"(95% Wilson interval {_pct(lo)} to {_pct(hi)}, n = {s['n']} items)",
        "",
    ]
    claim = card.get("claim")
    if claim:
        verdict = "inside" if claim["inside"] else "outside"
        lines += [f"Claimed {claim['claimed']:.1f}% ({claim['source']}) vs measured {claim['measured']:.1f}% "
                  f"[{claim['ci95'][0]:.1f}, {claim['ci95'][1]:.1f}]: the claim is **{verdict}** the measured interval.", ""]
    if card.get("stale"):
        lines += [f"**Stale**: {card.get('stale_reason') or 'the model files changed'}.", ""]
    lines += [
        "| | |", "| --- | --- |",
        *([f"| model sha256 | `{card['model_sha256']}` |"] if not card.get("served") else [
            f"| served by | {_cell(card['served']['endpoint'])}, as {_cell(card['served']['model'])} "
            "(not hashed here: the weights are on the server) |"]),
        f"| adapter | {card.get('adapter') or '-'} |",
        f"| suite | {card['suite']['source']} (`{card['suite_sha256'][:16]}…`) |",
        f"| verifier | {card['verifier']['version']}{rescored_note(card)} |",
        f"| sampling | {', '.join(f'{k}={server_default(v)}' for k, v in card['sampling'].items())}, seed {card['seed']} |",
        f"| mean tokens | thinking {s['mean_thinking_tokens']:.0f}, answer {s['mean_answer_tokens']:.0f} "
        f"({_pct(s['thinking_share'])} thinking) |",
        f"| unjudged | {s['unjudged']} |",
        f"| machine | {card['machine'].get('platform', '')} |",
        f"| finished | {card['finished']} |",
        "",
        *budget_table(card.get("budgets")),
        "## Items" + (f" (at budget {card['budgets'][-1]['label']})" if card.get("budgets") else ""), "",
        "| # | id | extracted | score | reason | tokens (think/answer) | seconds |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for item in card["items"]:
        for k, sample in enumerate(item["samples"]):
            cells = [f"{item['index']}" + (f".{k}" if card["samples"] > 1 else ""), item["id"],
                     f"`{sample['extracted']}`" if sample["extracted"] is not None else "-",
                     "-" if sample["score"] is None else f"{sample['score']:g}", sample["reason"],
                     f"{sample['thinking_tokens']}/{sample['answer_tokens']}", f"{sample['seconds']:.1f}"]
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    files = card["model_files"] or {}
    lines += ["", "## Files", ""] + [f"- `{n}` `{h}`" for n, h in sorted(files.items())]
    lines += [f"- adapter `{n}` `{h}`" for n, h in sorted((card.get("adapter_files") or {}).items())]
    return "\n".join(lines) + "\n"
