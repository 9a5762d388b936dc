"""Re-judge a report card's stored completions with the current verifier (`workbench evals --rescore`).

Nothing is generated again: every sample's thinking and answer are in the card. The samples'
verdicts, the summary (accuracy, ci95, ...), the claim check and the verifier version are rewritten,
in the JSON and its Markdown; the model's hashes and the stale flag (which is about the model's
files) are left as they are. `rescored` records each re-scoring: from which judge, when, how many
verdicts changed. A budget sweep's every point is re-judged and its `budgets` list recomputed. Only math cards: the other verifiers need example fields a card does not keep.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from workbench.errors import UserError
from workbench.eval import card as cards
from workbench.eval.budgets import curve_points, label
from workbench.eval.runner import completion_text

RESCORABLE = ("math",)


def read(path: Path) -> dict:
    try:
        card = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise UserError(f"cannot read report card {path}: {e.strerror}") from None
    except (ValueError, UnicodeDecodeError):
        raise UserError(f"{path} is not a report card (not JSON)") from None
    items = card.get("items") if isinstance(card, dict) else None
    if not isinstance(items, list) or not all(isinstance(it, dict) and isinstance(it.get("samples"), list)
                                              and all(isinstance(s, dict) for s in it["samples"]) for it in items):
        raise UserError(f"{path} is not a report card (no items with samples)")
    name = (card.get("verifier") or {}).get("name")
    if name not in RESCORABLE:
        raise UserError(f"{path}: only math cards can be re-scored (this one used {name!r}, whose examples "
                        "the card does not keep); run `workbench eval` again")
    return card


def example_of(card: dict, item: dict) -> dict:
    # The prompt opened <think> unless the card says otherwise (every shipped profile forces it).
    return {"answer": item.get("gold"), "think_in_prompt": (card.get("verifier") or {}).get("think_in_prompt", True)}


def completion_of(sample: dict) -> str:
    thinking, answer = str(sample.get("thinking") or ""), str(sample.get("answer") or "")
    closed = sample.get("thinking_closed")
    if closed is None:  # older cards: an answer means the thinking closed (no answer scores 0 either way)
        closed = bool(answer.strip())
    return completion_text(thinking, answer, bool(closed))


def rescore_card(path: Path, pool, now: datetime | None = None) -> dict:
    """Re-judge `path` in place; returns {"path", "before", "after", "from", "to", "changed"}."""
    from workbench.verify import verifier_version

    path = Path(path)
    card = read(path)
    name = card["verifier"]["name"]
    before_version, version = card["verifier"].get("version"), verifier_version(name)
    judged = [(item, sample) for item in card["items"] for sample in item["samples"]]
    judged += [(item, sample) for item in card["items"] if isinstance(item.get("by_budget"), dict)
               for samples in item["by_budget"].values() if isinstance(samples, list)
               for sample in samples if isinstance(sample, dict)]  # a budget sweep: every point
    verdicts = pool.map(name, [(completion_of(s), example_of(card, it)) for it, s in judged])
    changed = 0
    for (_, sample), verdict in zip(judged, verdicts):
        correct = verdict.score is not None and verdict.score >= 1.0
        changed += sample.get("score") != verdict.score
        sample.update(extracted=verdict.extracted, score=verdict.score, reason=verdict.reason, correct=correct)
    before = card.get("accuracy")
    summary = cards.summarize(card["items"])
    card.update(summary)
    if isinstance(card.get("budgets"), list) and all(isinstance(it.get("by_budget"), dict) for it in card["items"]):
        budgets = [p.get("budget") for p in card["budgets"] if isinstance(p, dict)]
        card["budgets"] = curve_points({label(b): [it["by_budget"][label(b)] for it in card["items"]] for b in budgets},
                                       budgets)
    claim = card.get("claim")
    if isinstance(claim, dict) and "claimed" in claim:
        card["claim"] = cards.claim_check((claim["claimed"], claim.get("source", "")), summary, claim.get("suite", ""))
    card["verifier"] = {**card["verifier"], "version": version}
    when = (now or datetime.now(timezone.utc)).isoformat(timespec="seconds")
    card["rescored"] = list(card.get("rescored") or []) + [{"from": before_version, "to": version, "at": when,
                                                            "changed": changed, "accuracy_before": before}]
    try:
        cards.write_atomic(path, json.dumps(card, indent=1))
        cards.write_atomic(path.with_suffix(".md"), cards.render_markdown(card))
    except OSError as e:
        raise UserError(f"cannot rewrite {path}: {e.strerror} (copy the card somewhere writable)") from None
    return {"path": str(path), "before": before, "after": card["accuracy"], "from": before_version, "to": version,
            "changed": changed}
