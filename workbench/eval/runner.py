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

from workbench.engine.events import ModelInfo
from workbench.engine.protocol import Engine
from workbench.errors import UserError
from workbench.eval import card as cards
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


class Progress:
    """A bar with running accuracy on stderr: redrawn in place on a terminal, one line per sample otherwise."""

    def __init__(self, total: int, stream=None) -> None:
        self.total, self.out = total, stream or sys.stderr
        self.tty = self.out.isatty()
        self.started = time.monotonic()

    def note(self, text: str) -> None:
        self.out.write(("\r\x1b[2K" if self.tty else "") + text + "\n")
        self.out.flush()

    def update(self, done: int, correct: int, judged_now: int) -> None:
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


def read_partial(path: Path) -> dict[tuple[int, int], dict]:
    """Samples already done; a torn last line (killed mid-write) is ignored."""
    done = {}
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return done
    for line in lines:
        try:
            record = parse_line(line)
            done[(int(record["item"]), int(record["sample"]))] = record
        except (ValueError, KeyError, TypeError):
            continue
    return done


def completion_text(thinking: str, answer: str, closed: bool) -> str:
    """The completion as verifiers see it: the prompt opened <think>, so only the close appears."""
    return f"{thinking}</think>{answer}" if closed else thinking + answer


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
    from workbench.engine.choose import open_engine
    from workbench.engine.events import ChatRequest, Done, Failed, Sampling
    from workbench.engine.profiles import Profile
    from workbench.verify import VerifierPool, verifier_version
    from workbench.verify.registry import check_available

    if options.samples < 1:
        raise UserError("--samples must be at least 1")
    adapter = Path(options.adapter).expanduser().resolve() if options.adapter else None
    if adapter is not None and not adapter.is_dir():
        raise UserError(f"{adapter}: adapter folder not found")
    suite = load_suite(options.suite, options.limit, options.seed)
    check_available(suite.spec.verifier)  # before the model loads: code needs its sandbox
    items = suite.items
    log = Progress(len(items) * options.samples, progress_stream)
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
        if options.thinking_budget is not None:  # only then: earlier runs' keys and cards stay as they were
            if not engine.capabilities.steer:
                raise UserError(f"{options.endpoint or 'this engine'} cannot cut the thinking at a budget: "
                                "drop --thinking-budget, or evaluate the model here")
            settings["thinking_budget"] = options.thinking_budget
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
        correct = sum(bool(r["correct"]) for r in done.values())
        generated_now = 0
        with VerifierPool(workers=2) as pool, Interrupt() as interrupt, open(partial_path, "a", encoding="utf-8") as partial:
            log.update(len(done), correct, 0)
            for item in items:
                example = {**item["example"], "think_in_prompt": profile.force_think}
                for k in range(options.samples):
                    if (item["index"], k) in done:
                        continue
                    if interrupt.requested:
                        break
                    seed = options.seed * 1_000_003 + item["index"] * options.samples + k
                    request = ChatRequest(ChatRequest.single(item["prompt"]).messages,
                                          Sampling(sampling.temperature, sampling.top_p, sampling.max_tokens, seed),
                                          max_thinking_tokens=options.thinking_budget)
                    t0 = time.monotonic()
                    job = engine.generate(request)
                    interrupt.job = job
                    thinking, answer, end = job.collect()
                    interrupt.job = None
                    if interrupt.requested:
                        break  # the sample in flight is dropped, never recorded half-done
                    stats = end.stats if isinstance(end, Done) else None
                    if stats is not None:
                        verdict = pool.verify(suite.spec.verifier, completion_text(
                            thinking, answer, stats.thinking_closed), example, options.verify_timeout)
                        score, reason, extracted = verdict.score, verdict.reason, verdict.extracted
                    else:
                        score, reason, extracted = None, f"generation failed: {getattr(end, 'message', end)}", None
                    record = {
                        "item": item["index"], "sample": k, "seed": seed, "thinking": thinking,
                        "answer": answer, "extracted": extracted, "score": score, "reason": reason,
                        "correct": score is not None and score >= 1.0,
                        "thinking_tokens": stats.thinking_tokens if stats else 0,
                        "answer_tokens": stats.answer_tokens if stats else 0,
                        "seconds": round(time.monotonic() - t0, 3),
                        "finish_reason": stats.finish_reason if stats else "error",
                        "thinking_closed": stats.thinking_closed if stats else False,  # for re-scoring
                    }
                    partial.write(json.dumps(record) + "\n")
                    partial.flush()
                    os.fsync(partial.fileno())
                    done[(item["index"], k)] = record
                    correct += record["correct"]
                    generated_now += 1
                    log.update(len(done), correct, generated_now)
                if interrupt.requested:
                    break
        log.end()
        if interrupt.requested:
            log.note(f"interrupted after {len(done)} of {len(items) * options.samples} samples; "
                     "run the same command with --resume to continue")
            raise KeyboardInterrupt
    finally:
        if own_engine:
            engine.close()

    card_items = [{"index": it["index"], "id": it["id"], "line": it["line"], "prompt": it["prompt"], "gold": it["gold"],
                   "samples": [{k2: v for k2, v in done[(it["index"], k)].items() if k2 not in ("item",)}
                               for k in range(options.samples)]} for it in items]
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
        "stale": False,
        "items": card_items,
    }
    stem = f"{suite.spec.name}-{finished.strftime('%Y%m%d-%H%M%S')}-{run_key[:6]}"
    json_path = out_dir / f"{stem}.json"
    cards.write_atomic(json_path, json.dumps(card, indent=1))
    cards.write_atomic(out_dir / f"{stem}.md", cards.render_markdown(card))
    partial_path.unlink(missing_ok=True)
    return card, json_path
