"""`workbench eval`'s loop: generate with the engine, verify in worker processes, record as we go.

Every finished sample is appended (and fsynced) to a hidden partial file beside the cards, so
an interrupted run (Ctrl-C, kill -9) resumes with `--resume` and loses at most the sample that
was in flight. The partial file is keyed by everything that decides the results (model and
adapter hashes, suite hash, verifier, sampling, samples, seed), so a resume never mixes runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import signal
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from workbench.engine.events import Decoding, ModelInfo
from workbench.engine.protocol import Engine
from workbench.errors import UserError
from workbench.eval import card as cards
from workbench.eval.budgets import curve_points, label, sweep
from workbench.eval.claims import claimed_score
from workbench.eval.suites import load_suite
from workbench.jsonl import parse_line
from workbench.models.identity import combined_sha256, file_hashes


@dataclass(frozen=True)
class EvalOptions:
    suite: str
    model: str | None = None
    adapter: str | None = None
    limit: int | None = None
    samples: int = 1
    seed: int = 0
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    resume: bool = False
    fresh: bool = False
    verify_timeout: float | None = None
    trust_remote_code: bool = False
    endpoint: str | None = None  # a model served there (`open_engine`), instead of one loaded here
    thinking_budget: int | None = None  # max_thinking_tokens of every request (budget forcing)
    budgets: tuple[int | None, ...] | None = None  # a sweep (eval/budgets.py): one card, a point per budget
    min_thinking: int | None = None  # min_thinking_tokens of every request (an early close becomes "Wait")
    json_progress: bool = False  # progress as JSON lines (for the app), not a bar
    decoding: Decoding = Decoding()  # KV-cache bits and draft model of every request (a model run here)


class Progress:
    """A bar with running accuracy on stderr: redrawn in place on a terminal, one line per sample
    otherwise; or (`as_json`) one JSON object per line: {"note"} or {"done", "total", "correct",
    "points"} where points are the finished sample's budgets (label, correct, thinking tokens)."""

    def __init__(self, total: int, stream=None, as_json: bool = False) -> None:
        self.total, self.out, self.json = total, stream or sys.stderr, as_json
        self.tty = self.out.isatty() and not as_json
        self.started = time.monotonic()

    def note(self, text: str) -> None:
        if self.json:
            text = json.dumps({"note": text})
        self.out.write(("\r\x1b[2K" if self.tty else "") + text + "\n")
        self.out.flush()

    def update(self, done: int, correct: int, judged_now: int, records: list[dict] | None = None) -> None:
        if self.json:
            points = [{"budget": r.get("budget"), "correct": r["correct"], "thinking_tokens": r["thinking_tokens"]}
                      for r in records or []]
            self.out.write(json.dumps({"done": done, "total": self.total, "correct": correct, "points": points}) + "\n")
            self.out.flush()
            return
        width = 24
        filled = int(width * done / self.total) if self.total else width
        rate = (time.monotonic() - self.started) / judged_now if judged_now else 0.0
        line = (f"[{'#' * filled}{'.' * (width - filled)}] {done}/{self.total}  "
                f"accuracy {correct / done:.1%}" if done else f"[{'.' * width}] 0/{self.total}")
        line += f"  {rate:.1f} s/sample" if rate else ""
        self.out.write(("\r\x1b[2K" + line) if self.tty else line + "\n")
        self.out.flush()

    def end(self) -> None:
        if self.tty:
            self.out.write("\n")
            self.out.flush()


class Interrupt:
    """First Ctrl-C cancels the sample in flight and ends the run (resumable); a second one quits at once."""

    def __init__(self) -> None:
        self.job = None
        self.requested = False

    def __enter__(self) -> "Interrupt":
        def handler(signum, frame):
            if self.requested:
                raise KeyboardInterrupt
            self.requested = True
            if self.job is not None:
                self.job.cancel("cancelled")

        try:
            self.previous = signal.signal(signal.SIGINT, handler)
        except ValueError:  # not the main thread: no handler, Ctrl-C is the caller's business
            self.previous = None
        return self

    def __exit__(self, *exc) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def package_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("reasoning-workbench", "mlx", "mlx-lm", "sympy", "math-verify"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def machine() -> dict:
    info = {"platform": platform.platform(), "machine": platform.machine(), "processor": platform.processor(),
            "cpus": os.cpu_count()}
    from workbench.machine import memory_bytes

    if memory := memory_bytes():
        info["memory_gb"] = round(memory / 1e9, 1)
    return info


def read_partial(path: Path) -> dict[tuple[int, int, str | None], dict]:
    """Samples already done, by (item, sample, budget label or None); a torn last line (killed
    mid-write) is ignored."""
    done = {}
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return done
    for line in lines:
        try:
            record = parse_line(line)
            if not _is_record(record):
                continue  # not what judge() writes (edited, or another version's): generated again
            done[(int(record["item"]), int(record["sample"]), record.get("budget"))] = record
        except (ValueError, KeyError, TypeError):
            continue
    return done


def _is_record(record) -> bool:
    count = lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0  # noqa: E731
    return (isinstance(record, dict) and isinstance(record.get("correct"), bool)
            and isinstance(record.get("thinking"), str) and isinstance(record.get("answer"), str)
            and count(record.get("thinking_tokens")) and count(record.get("answer_tokens"))
            and isinstance(record.get("seconds"), (int, float)) and not isinstance(record.get("seconds"), bool)
            and (record.get("budget") is None or isinstance(record.get("budget"), str)))


def completion_text(thinking: str, answer: str, closed: bool) -> str:
    """The completion as verifiers see it: the prompt opened <think>, so only the close appears."""
    return f"{thinking}</think>{answer}" if closed else thinking + answer


def judge(point, pool, verifier: str, example: dict, timeout: float | None) -> dict:
    """A sample's record: the response at one budget (a sweep `Point`) and the verifier's verdict."""
    if point.failure is None:
        verdict = pool.verify(verifier, completion_text(point.thinking, point.answer, point.thinking_closed),
                              example, timeout)
        score, reason, extracted = verdict.score, verdict.reason, verdict.extracted
    else:
        score, reason, extracted = None, point.failure, None
    return {
        "thinking": point.thinking, "answer": point.answer, "extracted": extracted, "score": score,
        "reason": reason, "correct": score is not None and score >= 1.0,
        "thinking_tokens": point.thinking_tokens, "answer_tokens": point.answer_tokens,
        "seconds": round(point.seconds, 3), "finish_reason": point.finish_reason,
        "thinking_closed": point.thinking_closed,  # for re-scoring
    }


def weights_identity(info: ModelInfo, adapter: Path | None, log: Progress) -> tuple[dict, Path]:
    """(what the card says about the weights that answered, the folder for its cards).

    A local model: the sha256 of its files (and the adapter's); its older cards are re-checked
    against them. A model served elsewhere: where, and the name the server gave; its files are not
    here to hash, so the card claims no sha256, and its cards go under $WORKBENCH_HOME/evals/served/."""
    if info.location == "local":
        folder = Path(info.path)
        model_files = file_hashes(folder)
        out_dir, fallback = cards.cards_dir(folder)
        if fallback:
            log.note(f"{folder} is shipped with the app or read-only: report cards go to {out_dir}")
        for path in cards.card_paths(folder):  # these files may no longer be what older cards measured
            cards.refresh_stale(path, model_files)
        return {"model": folder.name, "model_path": str(folder), "model_sha256": combined_sha256(model_files),
                "model_files": model_files, "adapter_files": file_hashes(adapter) or None, "served": None}, out_dir
    out_dir = cards.served_cards_dir(info.location, info.name)
    return {"model": info.name, "model_path": None, "model_sha256": None, "model_files": None, "adapter_files": None,
            "served": {"endpoint": info.location, "model": info.name}}, out_dir


def run_eval(options: EvalOptions, engine: Engine | None = None, progress_stream=None) -> tuple[dict, Path]:
    """Run a suite; return (report card, path of its JSON). `engine` defaults to the one
    `open_engine(options.endpoint)` chooses: a server's model, or a new in-process ThreadEngine."""
    from workbench.engine.choose import open_engine, refuse_decoding
    from workbench.engine.events import ChatRequest, Failed, Sampling
    from workbench.engine.profiles import Profile
    from workbench.verify import VerifierPool, verifier_version
    from workbench.verify.registry import check_available

    if options.samples < 1:
        raise UserError("--samples must be at least 1")
    if options.budgets and options.thinking_budget is not None:
        raise UserError("--budgets and --thinking-budget do not go together (a sweep sets the budget per point)")
    budgets = list(options.budgets or [])
    adapter = Path(options.adapter).expanduser().resolve() if options.adapter else None
    if adapter is not None and not adapter.is_dir():
        raise UserError(f"{adapter}: adapter folder not found")
    suite = load_suite(options.suite, options.limit, options.seed)
    check_available(suite.spec.verifier)  # before the model loads: code needs its sandbox
    items = suite.items
    log = Progress(len(items) * options.samples, progress_stream, options.json_progress)
    for problem in suite.problems:
        log.note(f"workbench: warning: {problem} (skipped)")

    own_engine = engine is None
    if own_engine:
        engine = open_engine(options.endpoint)
    try:
        _, _, loaded = engine.load(options.model, str(adapter) if adapter else None, options.trust_remote_code).collect()
        if isinstance(loaded, Failed):
            raise UserError(loaded.message)
        info = loaded.info
        identity, out_dir = weights_identity(info, adapter, log)
        # A served model's profile is the server's business: unset settings are left to it.
        profile = Profile.from_dict(info.profile or {})
        defaults = profile.sampling if info.profile else Sampling()
        sampling = Sampling(options.temperature, options.top_p, options.max_tokens).over(defaults)
        settings = {"temperature": sampling.temperature, "top_p": sampling.top_p, "max_tokens": sampling.max_tokens}
        # only when set: earlier runs' keys and cards stay as they were
        steering = {"thinking_budget": options.thinking_budget, "min_thinking": options.min_thinking,
                    "budgets": [label(b) for b in budgets] if budgets else None}
        steering = {k: v for k, v in steering.items() if v is not None}
        if steering and not engine.capabilities.steer:
            flag = "--budgets" if budgets else "--thinking-budget" if options.thinking_budget is not None else "--min-thinking"
            raise UserError(f"{options.endpoint or 'this engine'} cannot steer the thinking: "
                            f"drop {flag}, or evaluate the model here")
        settings.update(steering)
        if options.decoding.local:  # only then, as above; a draft changes no greedy answer but sampled ones may differ
            refuse_decoding(engine, options.decoding, options.endpoint)
            settings["decoding"] = {k: v for k, v in options.decoding.to_dict().items() if v is not None}
        weights = ([identity["model_sha256"], combined_sha256(identity["adapter_files"] or {})]
                   if identity["served"] is None else [identity["served"]["endpoint"], identity["served"]["model"]])
        key_source = json.dumps([*weights, suite.sha256, suite.spec.to_dict(),
                                 settings, options.samples, options.seed, len(items)], sort_keys=True)
        run_key = hashlib.sha256(key_source.encode()).hexdigest()[:16]
        partial_path = out_dir / f".{suite.spec.name}-{run_key}.partial.jsonl"
        done = {}
        if partial_path.exists():
            if options.resume:
                done = read_partial(partial_path)
                log.note(f"resuming: {len(done)} of {len(items) * options.samples} samples already done")
            elif options.fresh:
                partial_path.unlink()
            else:
                raise UserError(f"an interrupted run of this eval exists ({partial_path}): "
                                "add --resume to continue it, or --fresh to start over")
        elif options.resume:
            log.note("nothing to resume: starting from the beginning")

        started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        labels = [label(b) for b in budgets] or [None]
        headline = labels[-1]  # the card's own accuracy: the largest budget's
        correct = sum(bool(r["correct"]) for key, r in done.items() if key[2] == headline)
        continue_from_cuts = info.location == "local"  # a served model may not continue a thinking
        generated_now = 0
        with VerifierPool(workers=2) as pool, Interrupt() as interrupt, open(partial_path, "a", encoding="utf-8") as partial:
            log.update(len(done) // len(labels), correct, 0)
            for item in items:
                example = {**item["example"], "think_in_prompt": profile.force_think}
                for k in range(options.samples):
                    if all((item["index"], k, lb) in done for lb in labels):
                        continue
                    if interrupt.requested:
                        break
                    seed = options.seed * 1_000_003 + item["index"] * options.samples + k
                    request = ChatRequest(ChatRequest.single(item["prompt"]).messages,
                                          Sampling(sampling.temperature, sampling.top_p, sampling.max_tokens, seed),
                                          max_thinking_tokens=options.thinking_budget,
                                          min_thinking_tokens=options.min_thinking, decoding=options.decoding)
                    points = sweep(engine, request, budgets or [options.thinking_budget], continue_from_cuts,
                                   watch=lambda job: setattr(interrupt, "job", job))
                    interrupt.job = None
                    if interrupt.requested:
                        break  # the sample in flight is dropped, never recorded half-done
                    records = []
                    for point, lb in zip(points, labels):
                        if point.reused and records:  # the same response as the budget below: the same verdict
                            record = {**records[-1], "budget": lb, "reused": True}
                        else:
                            record = judge(point, pool, suite.spec.verifier, example, options.verify_timeout)
                            record.update(item=item["index"], sample=k, seed=seed)
                            if budgets:
                                record.update(budget=lb, cut=point.cut, reused=point.reused)
                        records.append(record)
                    for record in records:
                        partial.write(json.dumps(record) + "\n")
                    partial.flush()
                    os.fsync(partial.fileno())
                    for record, lb in zip(records, labels):
                        done[(item["index"], k, lb)] = record
                    correct += records[-1]["correct"]
                    generated_now += 1
                    log.update(len(done) // len(labels), correct, generated_now, records if budgets else None)
                if interrupt.requested:
                    break
        log.end()
        if interrupt.requested:
            log.note(f"interrupted after {len(done) // len(labels)} of {len(items) * options.samples} samples; "
                     "run the same command with --resume to continue")
            raise KeyboardInterrupt
    finally:
        if own_engine:
            engine.close()

    def samples_at(it, lb):
        return [{k2: v for k2, v in done[(it["index"], k, lb)].items() if k2 not in ("item", "budget")}
                for k in range(options.samples)]

    card_items = [{"index": it["index"], "id": it["id"], "line": it["line"], "prompt": it["prompt"], "gold": it["gold"],
                   "samples": samples_at(it, headline)} for it in items]
    sweep_card = {}
    if budgets:
        for card_item, it in zip(card_items, items):
            card_item["by_budget"] = {lb: samples_at(it, lb) for lb in labels}
        sweep_card["budgets"] = curve_points({lb: [ci["by_budget"][lb] for ci in card_items] for lb in labels}, budgets)
    summary = cards.summarize(card_items)
    claim = cards.claim_check(claimed_score(identity["model"], profile.claims, suite.spec.name), summary, suite.spec.name)
    finished = datetime.now(timezone.utc)
    card = {
        "card_version": cards.CARD_VERSION,
        **identity,
        "adapter": str(adapter) if adapter else None,
        "suite": {"name": suite.spec.name, "source": suite.source, "sha256": suite.sha256, "n_items": len(items),
                  "spec": suite.spec.to_dict(), "malformed_lines": suite.problems},
        "suite_sha256": suite.sha256,
        "verifier": {"name": suite.spec.verifier, "version": verifier_version(suite.spec.verifier),
                     "think_in_prompt": profile.force_think},
        "sampling": settings, "samples": options.samples, "seed": options.seed, "limit": options.limit,
        "versions": package_versions(), "machine": machine(),
        "started": started, "finished": finished.isoformat(timespec="seconds"),
        **summary,
        "claim": claim,
        **sweep_card,
        "stale": False,
        "items": card_items,
    }
    stem = f"{suite.spec.name}-{finished.strftime('%Y%m%d-%H%M%S')}-{run_key[:6]}"
    json_path = out_dir / f"{stem}.json"
    cards.write_atomic(json_path, json.dumps(card, indent=1))
    cards.write_atomic(out_dir / f"{stem}.md", cards.render_markdown(card))
    partial_path.unlink(missing_ok=True)
    return card, json_path
