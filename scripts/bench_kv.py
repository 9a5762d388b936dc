"""KV-cache quantization: the cache's size, peak memory and decode tokens/s after a long prompt, with
kv_bits off (the baseline), 8 and 4, in one run.

Each case runs the engine's own path (`generate.stream_prompt` with a `decode.Decoder`) on a random bench
model whose context fits the longest prompt: a prompt of `--contexts` tokens (one token per character),
then `--decode` tokens. Two peaks are printed: over the whole request (dominated by processing the
prompt: 2,048-token chunks attending to everything before them) and while decoding (MLX's peak reset at
the first token: the weights, the cache and one token's work, what a long chain of thought holds).
`--kv-start` 0 quantizes the cache from the first chunk on, so the prompt is processed with quantized
attention (slower: docs/benchmarks.md); `--kv-start end` processes the prompt in full precision and
quantizes the whole cache once it is in: the same cache to decode from, at the unquantized prompt's speed. Cases alternate over `--repeats` rounds; medians are printed with the ratio to the
unquantized baseline. The bench model computes in float32 (MLX on this CPU), so its unquantized cache
takes 4 bytes a value where a Mac's fp16/bf16 model takes 2: the memory ratios here are larger than on
a Mac by up to 2x; `--dtype float16` measures the Mac's layout (slowly on a CPU).

    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libopenblas.so.0 .venv/bin/python scripts/bench_kv.py \\
        [--contexts 8192,32768 --hidden 256 --layers 4 --decode 32 --repeats 1 --kv-start end]
"""

import argparse
import statistics
import tempfile
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--contexts", default="8192,32768", help="prompt lengths in tokens, comma-separated")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4, help="attention heads (each hidden/heads wide)")
    ap.add_argument("--decode", type=int, default=32, help="tokens generated after the prompt")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--dtype", choices=("float32", "float16"), default="float32")
    ap.add_argument("--kv-start", default="0",
                    help="quantize from this many cached tokens on, or 'end': once the prompt is in")
    args = ap.parse_args()

    import mlx.core as mx
    from mlx.utils import tree_map

    from workbench.engine.decode import Decoder
    from workbench.engine.events import Done, Sampling
    from workbench.engine.generate import PromptCache, stream_prompt
    from workbench.engine.loader import load_model
    from workbench.engine.tiny import make_bench_model

    contexts = [int(c) for c in args.contexts.split(",")]
    if args.kv_start != "end" and not args.kv_start.isdigit():
        ap.error(f"--kv-start: a number of tokens or 'end', not {args.kv_start!r}")
    folder = make_bench_model(Path(tempfile.mkdtemp()) / "bench", hidden=args.hidden, layers=args.layers,
                              heads=args.heads, kv_heads=args.heads // 2, max_positions=max(contexts) + args.decode + 16)
    loaded = load_model(folder)
    if args.dtype == "float16":
        loaded.model.update(tree_map(lambda p: p.astype(mx.float16), loaded.model.parameters()))
    words = "First, add the ones: 4 plus 8 is 12, write 2 and carry 1. Then the tens. Wait, check again. "
    sampling = Sampling(temperature=0.0, max_tokens=args.decode)

    class PeaksDecoder(Decoder):
        """The engine's decoder, noting MLX's peak when the first token is out (the prompt is in) and resetting it:
        the Done's peak is then the decoding's own. (Events will not do: a random model's tokens may all be
        held back by the detokenizer until the end.)"""

        prompt_peak = 0

        def steps(self, *args, **kw):
            first = True
            for token in super().steps(*args, **kw):
                if first:
                    self.prompt_peak, first = mx.get_peak_memory(), False
                    mx.reset_peak_memory()
                yield token

    def case(context: int, bits: int) -> tuple[float, float, float, float]:
        """(KV cache MB, peak MB over the request, peak MB while decoding, decode tok/s) of one run."""
        prompt = (words * (context // len(words) + 1))[:context]
        # mlx-lm processes all but the prompt's last token in chunks, then checks the cache's length
        decoder = PeaksDecoder(kv_bits=bits, kv_start=context - 1 if args.kv_start == "end" else int(args.kv_start))
        cache = PromptCache()
        done = list(stream_prompt(loaded.model, loaded.tokenizer, prompt, sampling, cache=cache, decoder=decoder))[-1]
        request_peak = decoder.prompt_peak
        assert isinstance(done, Done) and done.stats.generated_tokens == args.decode, done
        assert all(hasattr(c, "bits") for c in cache.latest) == bool(bits), "the cache was not quantized as asked"
        decode_peak = done.stats.peak_memory_gb * 1e9  # since the reset
        kv = sum(c.nbytes for c in cache.latest) / 1e6
        print(f"  (context {context:,}, kv_bits {bits}: prompt {done.stats.time_to_first_token:.1f} s, "
              f"decode {done.stats.generation_tps:.1f} tok/s, peaks {request_peak / 1e6:.1f} / {decode_peak / 1e6:.1f} MB)",
              flush=True)
        return kv, max(request_peak, decode_peak) / 1e6, decode_peak / 1e6, done.stats.generation_tps

    print(f"bench model: hidden {args.hidden} x {args.layers} layers, {args.heads} heads ({args.heads // 2} KV heads, "
          f"{args.hidden // args.heads} wide), {args.dtype}; kv_start {args.kv_start}; {args.decode} tokens decoded after the prompt; "
          f"{args.repeats} round(s), medians", flush=True)
    for context in contexts:
        results: dict[int, list] = {0: [], 8: [], 4: []}
        for r in range(args.repeats):
            for bits in ((0, 8, 4) if r % 2 == 0 else (4, 8, 0)):
                results[bits].append(case(context, bits))
        base = [statistics.median(x[i] for x in results[0]) for i in range(4)]
        for bits in (0, 8, 4):
            kv, peak, decode_peak, tps = (statistics.median(x[i] for x in results[bits]) for i in range(4))
            name = "off (fp)" if bits == 0 else f"{bits}-bit"
            print(f"context {context:>6,}  kv_bits {name:8s}  KV cache {kv:8.1f} MB ({kv / base[0]:.2f}x)  "
                  f"peak {peak:8.1f} MB ({peak / base[1]:.2f}x)  decoding {decode_peak:7.1f} MB "
                  f"({decode_peak / base[2]:.2f}x)  decode {tps:6.1f} tok/s ({tps / base[3]:.2f}x)", flush=True)


if __name__ == "__main__":
    main()
