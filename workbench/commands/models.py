"""`workbench models`: the models on this machine; `catalog`, `recommend`, `verify NAME`."""

from __future__ import annotations

import json


def add_arguments(parser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON list of models")
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    p = sub.add_parser("catalog", help="the models this app is for: sizes, memory at 32k context, published scores")
    p.add_argument("--json", action="store_true", help="one JSON list")
    p = sub.add_parser("recommend", help="the best catalog models this machine (or two like it) can run, and why")
    p.add_argument("--memory", type=float, default=None, metavar="GB", help="memory in GB (default: this machine's)")
    p.add_argument("--disk", type=float, default=None, metavar="GB",
                   help="free disk in GB (default: free space in the Hugging Face cache)")
    p.add_argument("--context", type=int, default=None, metavar="TOKENS",
                   help="prompt and response tokens to hold in the KV cache (default: 32768, R1's max_tokens)")
    p.add_argument("--kv-bits", type=int, choices=(0, 4, 8), default=0,
                   help="count the KV cache quantized to 4 or 8 bits (`run --kv-bits`); 0: fp16")
    p.add_argument("--draft", action="store_true",
                   help="count each model's draft too (`workbench models catalog` pairs them; `run --draft`): its "
                   "weights and KV cache")
    p.add_argument("--all", action="store_true", help="also list what does not fit")
    p.add_argument("--json", action="store_true", help="one JSON object")
    p = sub.add_parser("verify", help="hash every file of a pulled or imported model against its manifest")
    p.add_argument("name", help="model name or folder")


def human_size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return ""


def table(rows: list[tuple]) -> None:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())


def report_cards(folder: str) -> list[dict]:
    """The latest report card per suite (`workbench eval` writes them into `evals/` of the model folder, or
    under $WORKBENCH_HOME for read-only models): suite, accuracy in percent, n, stale (checked against the
    model's files now). Unreadable cards are skipped."""
    from workbench.eval.card import card_paths, refresh_cards, suite_name

    latest = {}
    fresh = dict(refresh_cards(folder))
    for path in card_paths(folder):  # sorted: names end in the finishing time
        try:
            card = fresh.get(path) or json.loads(path.read_text(encoding="utf-8"))
            accuracy = float(card["accuracy"])
        except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError):
            continue
        suite = str(suite_name(card) or path.stem)
        latest[suite] = {"suite": suite, "accuracy": accuracy * 100 if accuracy <= 1 else accuracy,
                         "n": card.get("n"), "stale": bool(card.get("stale")), "file": str(path)}
    return list(latest.values())


def card_summary(cards: list[dict]) -> str:
    parts = [f"{c['suite']} {c['accuracy']:.0f}%" + (f" (n={c['n']})" if c["n"] else "") + (" stale" if c["stale"] else "")
             for c in cards[-2:]]
    return ", ".join(parts) + (f" +{len(cards) - 2} more" if len(cards) > 2 else "") if cards else "-"


def origin(m) -> str:
    """shipped / pulled / imported / user, from the manifest a pull or import leaves."""
    from pathlib import Path

    try:
        manifest = json.loads(Path(m.path, "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return m.source
    if isinstance(manifest, dict) and manifest.get("repo"):
        return "pulled"
    return "imported" if isinstance(manifest, dict) and manifest.get("source") == "gguf" else m.source


def list_models(args) -> int:
    from workbench.models.local import list_local

    models = list_local()
    if args.json:
        print(json.dumps([{**m.to_dict(), "origin": origin(m), "report_cards": report_cards(m.path)} for m in models], indent=1))
        return 0
    if not models:
        print("no local models")
        return 0
    rows = [("", "NAME", "SIZE", "QUANT", "TYPE", "SOURCE", "REPORT CARDS", "PATH")]
    for m in models:
        rows.append(("*" if m.default else "", m.name, human_size(m.size_bytes), m.quantization or "full",
                     m.model_type, origin(m), card_summary(report_cards(m.path)), m.path))
    table(rows)
    print("\n* default model · more: `workbench models catalog`, `workbench models recommend`, `workbench pull NAME`")
    return 0


def catalog(args) -> int:
    from workbench.models.catalog import load_catalog
    from workbench.models.recommend import gb

    entries = load_catalog()
    if args.json:
        print(json.dumps([{**e.__dict__, "weights_bytes": e.weights_bytes, "kv_cache_32k_bytes": e.kv_cache_bytes(),
                           "memory_32k_bytes": e.memory_bytes()} for e in entries], indent=1))
        return 0
    rows = [("NAME", "PARAMS", "BITS", "DOWNLOAD", "MEMORY@32K", "AIME24", "MATH500", "GPQA", "LCB", "REPO")]
    for e in entries:
        claim = lambda s: f"{e.claims[s]:.1f}" if s in e.claims else "-"  # noqa: E731
        rows.append((e.name + (" (cluster)" if e.cluster_only else ""), f"{e.params_b:g}B", e.bits,
                     "embedded" if e.embedded else gb(e.weights_bytes), gb(e.memory_bytes()),
                     claim("aime24"), claim("math500"), claim("gpqa"), claim("livecodebench"), e.repo or "-"))
    table(rows)
    print("\nScores: published pass@1 (%) for the bf16 originals (DeepSeek-R1 README); memory = weights + KV cache"
          " at 32k context + 1 GB.")
    return 0


def recommend(args) -> int:
    from workbench.models.recommend import (
        GPU_SHARE, download_dir, free_disk, gb, machine_memory, recommend as fits_for)

    from workbench.errors import UserError
    from workbench.models.catalog import CONTEXT

    memory = int(args.memory * 1e9) if args.memory is not None else machine_memory()
    disk = int(args.disk * 1e9) if args.disk is not None else free_disk(download_dir())
    context = CONTEXT if args.context is None else args.context
    if context < 1:
        raise UserError(f"--context must be 1 token or more, not {context}")
    one = fits_for(memory, disk, context=context, kv_bits=args.kv_bits, draft=args.draft)
    two = fits_for(memory, disk, machines=2, context=context, kv_bits=args.kv_bits, draft=args.draft)
    good_one = [f for f in one if f.fits]
    single_names = {f.entry.name for f in good_one}
    good_two = [f for f in two if f.fits and f.entry.name not in single_names]
    if args.json:
        def row(f):
            return {"name": f.entry.name, "repo": f.entry.repo, "fits": f.fits, "memory_needed": f.memory_needed,
                    "memory_usable": f.memory_usable, "disk_needed": f.disk_needed,
                    "draft": f.draft.name if f.draft else None, "why": f.why()}
        print(json.dumps({"memory": memory, "disk_free": disk, "context": context, "kv_bits": args.kv_bits,
                          "draft": args.draft, "fits": [row(f) for f in good_one],
                          "two_machines": [row(f) for f in good_two],
                          "does_not_fit": [row(f) for f in one if not f.fits]}, indent=1))
        return 0
    print(f"This machine: {gb(memory)} memory ({gb(memory * GPU_SHARE)} usable by the GPU), {gb(disk)} free disk.")
    if good_one:
        best = good_one[0]
        print(f"\nBest you can run: {best.entry.name} ({best.entry.title}, {best.entry.bits}-bit)"
              f"  ->  workbench pull {best.entry.name}" + (f" and workbench pull {best.draft.name} (its draft)" if best.draft else ""))
        print("\nFits, best first:")
        for i, f in enumerate(good_one, 1):
            print(f"  {i:2d}. {f.entry.name:26s} score {f.entry.score:4.1f}  {f.why()}")
    else:
        print("\nNo catalog model fits; the embedded r1-nano always runs (`workbench run`).")
    if good_two:
        print("\nTwo machines like this together (`workbench cluster`, docs/distributed.md) could also run:")
        for f in good_two[:5]:
            print(f"      {f.entry.name:28s} {f.why()}")
    if args.all:
        print("\nDoes not fit:")
        for f in (f for f in one if not f.fits):
            print(f"      {f.entry.name:28s} {f.why()}")
    print("\nscore: mean published pass@1 (%) over AIME 2024, GPQA Diamond and LiveCodeBench (`workbench models catalog`);"
          " ties go to the bigger model, then more bits.")
    return 0


def verify(args) -> int:
    from workbench.models.local import resolve_model
    from workbench.models.manifest import manifest_path, read_manifest, remedy, verify_model

    folder = resolve_model(args.name)
    problems = verify_model(folder)
    manifest = read_manifest(folder)
    where = manifest_path(folder)
    if problems:
        for p in problems:
            print(f"CHANGED {p}")
        print(f"{folder.name}: {len(problems)} problem{'s' if len(problems) > 1 else ''} against {where}; it will not load "
              f"(the loader now refuses what this found): {remedy(folder, manifest)}, then "
              f"`workbench models verify {args.name}` re-checks every byte.")
        return 1
    print(f"{folder.name}: all {len(manifest['files'])} files match their sha256 in {where}")
    return 0


def main(args) -> int:
    action = getattr(args, "action", None)
    return {"catalog": catalog, "recommend": recommend, "verify": verify}.get(action, list_models)(args)
