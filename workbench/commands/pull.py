"""`workbench pull NAME_OR_REPO`: download a catalog model or hub repo, check its hashes, record a manifest."""

from __future__ import annotations

import sys


def add_arguments(parser) -> None:
    parser.add_argument("model", metavar="NAME_OR_REPO", help="a catalog name (`workbench models catalog`) or a hub repo id")
    parser.add_argument("--revision", default=None, help="branch, tag or commit to pin (default: main)")
    parser.add_argument("--name", default=None, help="folder name in your models directory (default: the catalog name)")
    parser.add_argument("--force", action="store_true", help="pull even when the model will not fit in memory or on disk")
    parser.add_argument("--context", type=int, default=None, metavar="TOKENS",
                        help="the fit check counts a KV cache of this many tokens, prompt and response (default: 32768)")
    parser.add_argument("--kv-bits", type=int, choices=(0, 4, 8), default=0,
                        help="... quantized to 4 or 8 bits (`run --kv-bits`); 0: fp16, the default")


def main(args) -> int:
    from workbench.models.catalog import CONTEXT
    from workbench.models.pull import pull
    from workbench.models.recommend import gb

    def on_plan(plan) -> None:
        cached = plan.download_bytes - plan.missing_bytes
        print(f"{plan.repo} @ {plan.commit[:12]} ({plan.revision}): {len(plan.files)} files, {gb(plan.download_bytes)}"
              + (f", {gb(cached)} already cached" if cached else ""), file=sys.stderr)
        for note in plan.notes:
            print(f"note: {note}", file=sys.stderr)

    folder = pull(args.model, revision=args.revision, name=args.name, force=args.force, on_plan=on_plan,
                  context=CONTEXT if args.context is None else args.context, kv_bits=args.kv_bits)
    print(f"pulled {folder.name} -> {folder} (sha256 of every file in {folder / 'manifest.json'})")
    return 0
