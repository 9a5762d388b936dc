"""A later turn in a long chat: with prompt-cache reuse versus an unseen history of the same shape, for
`workbench serve` and `mlx_lm.server` answering the same conversations in one run.

Each round sends a chat whose history is `--history` tokens (the bench model's tokenizer is one token per
byte; a random 8-layer model with an 8k context, `tiny.make_bench_model`), unseen by the server ("cold":
nothing to reuse), then its next turn: the same history, the answer, a new question ("warm": the server
may reuse the cache of the request before). Measured by the client: the whole response (the prompt
processed, then `--tokens` tokens), and the first streamed text for information only: a random model's
tokens are mostly stray UTF-8 bytes, which mlx_lm.server streams as they come and our engine holds until
they form text, so the first text is a difference in streaming, not in work. Both servers run at once, each
in its own process with the same BLAS, and are asked in turn, one request at a time; medians and ratios
are printed: each server's warm speed-up, and mlx_lm.server's warm time over ours per round.

    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libopenblas.so.0 .venv/bin/python scripts/bench_turns.py [--history 3000 --rounds 5]
"""

import argparse
import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = ("add the ones carry the tens so the sum is check again wait first then write it down because "
         "the answer must be an integer and a prime between ten and twenty squared").split()


def sentence(rng: random.Random, chars: int) -> str:
    out = []
    while sum(len(w) + 1 for w in out) < chars:
        out.append(rng.choice(WORDS))
    return " ".join(out)[:chars]


def conversation(seed: int, history: int, turn_chars: int = 240) -> tuple[list[dict], list[dict]]:
    """(a chat whose messages hold about `history` characters, its next turn): unique per seed."""
    rng = random.Random(seed)
    messages = []
    while sum(len(m["content"]) for m in messages) < history:
        messages.append({"role": "user", "content": f"[{seed}] " + sentence(rng, turn_chars)})
        messages.append({"role": "assistant", "content": sentence(rng, turn_chars)})
    messages.append({"role": "user", "content": sentence(rng, 80) + "?"})
    answer = {"role": "assistant", "content": "So the answer is " + sentence(rng, 60) + "."}
    return messages, [*messages, answer, {"role": "user", "content": sentence(rng, 80) + "?"}]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ask(port: int, messages: list[dict], max_tokens: int) -> tuple[float, int | None, float]:
    """(seconds to the first streamed text, the usage's cached_tokens if reported, seconds to the end) of one
    streamed answer."""
    body = json.dumps({"messages": messages, "stream": True, "temperature": 0.0, "max_tokens": max_tokens,
                       "stream_options": {"include_usage": True}})
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    start = time.perf_counter()
    connection.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    assert response.status == 200, (response.status, response.read()[:300])
    first, cached = None, None
    for line in response:
        line = line.strip()
        if not line.startswith(b"data: ") or line == b"data: [DONE]":
            continue
        chunk = json.loads(line[6:])
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if first is None and any(delta.get(k) for k in ("content", "reasoning", "reasoning_content")):
                first = time.perf_counter() - start
        details = (chunk.get("usage") or {}).get("prompt_tokens_details") or {}
        cached = details.get("cached_tokens", cached)
    end = time.perf_counter() - start
    connection.close()
    return (first if first is not None else end), cached, end


def start(command: list[str], port: int) -> subprocess.Popen:
    from workbench.blas import preload_env

    env = preload_env(os.environ) or dict(os.environ)
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    for _ in range(1200):
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/v1/models")
            if connection.getresponse().status == 200:
                return proc
        except OSError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"{command[2]} exited ({proc.returncode}) before serving")
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"{command[2]} did not start serving")


def measure(servers: dict, rounds: int, history: int, tokens: int) -> dict:
    """Both servers up at once, asked in turn (alternating which goes first), so the machine's load falls on
    both alike; one request at a time: each round both unseen histories, then both next turns."""
    procs = {}
    try:
        for name, (command, port) in servers.items():
            procs[name] = start(command, port)
        results = {name: {"cold": [], "warm": [], "cached": [], "warm_first": []} for name in servers}
        for r in range(-1, rounds):  # round -1 warms both up
            chat, next_turn = conversation(r + 1000 if r < 0 else r, history)
            order = list(servers) if r % 2 == 0 else list(servers)[::-1]
            colds = {name: ask(servers[name][1], chat, tokens)[2] for name in order}
            for name in order:  # the next turns back to back: the load changes less between them
                first, cached, whole = ask(servers[name][1], next_turn, tokens)
                if r >= 0:
                    results[name]["cold"].append(colds[name])
                    results[name]["warm"].append(whole)
                    results[name]["cached"].append(cached)
                    results[name]["warm_first"].append(first)
        return results
    finally:
        for proc in procs.values():
            proc.terminate()
            proc.wait(timeout=60)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--history", type=int, default=3000, help="characters (= tokens) of chat history")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tokens", type=int, default=8, help="tokens each answer generates")
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=8)
    args = ap.parse_args()

    from workbench.engine.tiny import make_bench_model

    folder = make_bench_model(Path(tempfile.mkdtemp()) / "bench", hidden=args.hidden, layers=args.layers,
                              max_positions=8192)
    ours, theirs = free_port(), free_port()
    results = measure({
        "workbench serve": ([sys.executable, "-m", "workbench", "serve", "--model", str(folder), "--port", str(ours)], ours),
        "mlx_lm.server": ([sys.executable, "-m", "mlx_lm.server", "--model", str(folder), "--port", str(theirs)], theirs),
    }, args.rounds, args.history, args.tokens)
    print(f"history {args.history} tokens, model hidden {args.hidden} x {args.layers} layers (8k context), "
          f"{args.rounds} rounds, {args.tokens} tokens per answer")
    for name, r in results.items():
        c, w = statistics.median(r["cold"]), statistics.median(r["warm"])
        print(f"{name}: unseen history {c * 1000:.0f} ms, next turn {w * 1000:.0f} ms (medians of whole responses; "
              f"next turns {', '.join(f'{x * 1000:.0f}' for x in r['warm'])}; their first text at "
              f"{', '.join(f'{x * 1000:.0f}' for x in r['warm_first'])}; cached tokens {r['cached']}); "
              f"speed-up {c / w:.1f}x")
    ratios = [t / o for t, o in zip(results["mlx_lm.server"]["warm"], results["workbench serve"]["warm"])]
    print(f"next turn, mlx_lm.server / workbench serve: {statistics.median(ratios):.2f}x median of rounds "
          f"({', '.join(f'{x:.2f}' for x in ratios)}; above 1: workbench serve is faster)")


if __name__ == "__main__":
    main()
