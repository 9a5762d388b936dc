"""The program every rank runs under `mlx.launch` (`workbench cluster serve` starts it).

All ranks load their shard and then move in lockstep: rank 0 serves HTTP and broadcasts, turn by
turn, which request generates its next few tokens (or, when idle, a ping that keeps the deadlines
meaningful); the others follow headless. Every rank generates the same tokens (same logits, same
seed, same order of turns); only rank 0 streams them out.

    python -m workbench.distributed.rank --model FOLDER [--mode pipeline|tensor] [--split 10,14]
"""

from __future__ import annotations

import argparse
import itertools
import queue
import random
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

SLICE = 8  # tokens a generation runs per turn; between turns rank 0 tells the ranks what runs next (or stops)
MAX_ACTIVE = 4  # generations in turn at once (each holds its KV cache); later requests wait
LOAD_DEADLINE = 900.0  # seconds: loading a 300 GB shard from disk is slow
PREFILL_SECONDS_PER_TOKEN = 0.03  # deadline until the first token (as if prompts ran at ~33 tokens/s)
# Idle ranks meet every IDLE_TICK seconds, each sleeping in between: a rank waiting inside a collective
# spins on its socket (a full core), so no rank may enter one long before the others.
IDLE_TICK = 0.25


def parse_args(argv=None):
    from workbench.engine.events import DRAFT_MODES

    p = argparse.ArgumentParser(prog="workbench.distributed.rank")
    p.add_argument("--model", required=True, help="model folder (the same path on every host)")
    p.add_argument("--mode", choices=("pipeline", "tensor"), default="pipeline")
    p.add_argument("--split", default=None, help="layer counts per rank, rank 0 first (default: by free memory)")
    p.add_argument("--backend", default="ring")
    p.add_argument("--host", default="127.0.0.1", help="address rank 0 binds")
    p.add_argument("--port", type=int, default=8123)
    p.add_argument("--token-file", default=None, help="file holding the bearer token (rank 0)")
    p.add_argument("--hosts", default=None, help="host names by rank, for messages")
    p.add_argument("--deadline", type=float, default=20.0, help="seconds a collective may take")
    p.add_argument("--kv-bits", type=int, default=None, help="KV-cache bits (4, 8; 0: fp16; default: the profile's)")
    p.add_argument("--kv-start", type=int, default=None, help="tokens from which the KV cache is quantized")
    p.add_argument("--context", type=int, default=None, help="tokens a request may use (prompt and completion; "
                   "default: the profile's, else the model's own)")
    p.add_argument("--draft", default=None, help="draft model folder (the same path on every host; '': none)")
    p.add_argument("--draft-tokens", type=int, default=None, help="tokens the draft proposes per step")
    p.add_argument("--draft-mode", choices=DRAFT_MODES, default=None)
    p.add_argument("--prompt-cache-gb", type=float, default=None,
                   help="KV caches kept for later requests, counted at the whole model's fp16 size (every rank alike)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    import mlx.core as mx

    from workbench.distributed.deadline import Control, Watchdog, peers_text
    from workbench.distributed.hostfile import free_memory_bytes, parse_split
    from workbench.distributed.shard import load_sharded
    from workbench.errors import UserError

    # Joining the ring blocks until every rank is up: bound that too.
    joining = Watchdog(args.deadline * 3, "the other ranks (they never joined)")
    with joining.guard("joining the ring"):
        group = mx.distributed.init(strict=True, backend=args.backend)
    rank, size = group.rank(), group.size()
    hosts = args.hosts.split(",") if args.hosts else [f"rank-{r}" for r in range(size)]
    hosts = (hosts + [f"rank-{r}" for r in range(len(hosts), size)])[:size]
    server = None

    def on_lost(message: str) -> None:
        if server is not None:
            server.fail(message)

    watchdog = Watchdog(args.deadline, peers_text(rank, hosts), on_lost)
    control = Control(group, watchdog)
    try:
        split = parse_split(args.split, size) if args.split else None
        free = [r["free"] for r in control.gather_json({"free": free_memory_bytes()})]
        loading = max(args.deadline, LOAD_DEADLINE)
        with watchdog.guard("loading the model", seconds=loading):
            loaded, shard = load_sharded(Path(args.model), group, args.mode, split, hosts[rank], free)
        print(shard.describe(), flush=True)
        loaded.decoder = rank_decoder(loaded, args, control)
        loaded.prompt_cache = rank_prompt_cache(loaded, args.prompt_cache_gb)
        shards = control.gather_json(shard.to_dict(), "waiting for the others to load", seconds=loading)
        if rank == 0:
            from workbench.distributed.server import ChatServer

            inbox: queue.Queue = queue.Queue()
            try:
                token = Path(args.token_file).read_text().strip() if args.token_file else None
                server = ChatServer((args.host, args.port), lambda request: _submit(inbox, loaded, request),
                                    loaded.info.name, token, cluster=lambda: shards, steers=True)
            except (OSError, ValueError, OverflowError) as e:  # OverflowError: a port beyond 65535
                raise UserError(f"cannot serve on {args.host}:{args.port} ({getattr(e, 'strerror', None) or e})") from None
            threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
            signal.signal(signal.SIGTERM, lambda *_: inbox.put(None))
            signal.signal(signal.SIGINT, lambda *_: inbox.put(None))
            print(f"serving {loaded.info.name} on http://{args.host}:{server.server_address[1]}/v1 "
                  f"({size} ranks, {args.mode} parallel)", flush=True)
            lead(loaded, control, inbox, shards, tick=min(IDLE_TICK, args.deadline / 4))
            server.shutdown()
        else:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches rank 0, which tells us to stop
            follow(loaded, control, tick=min(IDLE_TICK, args.deadline / 4))
    except UserError as e:
        print(f"workbench: error: rank {rank} ({hosts[rank]}): {e}", file=sys.stderr, flush=True)
        return 2
    except RuntimeError as e:  # the ring backend: "connection to a peer was lost"
        watchdog.fire(f"lost {peers_text(rank, hosts)} ({str(e).strip().splitlines()[0]})")
    return 0


def rank_decoder(loaded, args, control):
    """How every rank decodes: context, KV-cache bits and draft from the command line over the profile's. A
    draft is loaded whole on every rank (it is small), so each proposes the same tokens and keeps as many as
    the others: the pipeline's ranks must run the same tokens. In `auto` mode each rank times its own tokens
    with and without the draft, and all keep rank 0's verdict (broadcast at the token where it is made)."""
    from workbench.engine.decode import Draft, check_same_vocabulary
    from workbench.engine.events import Decoding
    from workbench.engine.generate import decoder_for
    from workbench.engine.loader import load_model
    from workbench.engine.profiles import decoding_problem
    from workbench.errors import UserError

    decoding = Decoding(kv_bits=args.kv_bits, kv_start=args.kv_start, draft=args.draft, draft_tokens=args.draft_tokens,
                        draft_mode=args.draft_mode, context=args.context).over(loaded.profile.decoding)
    problem = decoding_problem(decoding)
    if problem:
        raise UserError(problem)
    draft = None
    if decoding.draft:
        folder = Path(decoding.draft)
        if not folder.is_dir():  # a profile's draft by name: found as `workbench run` finds it
            from workbench.models.local import resolve_model

            folder = resolve_model(decoding.draft)
        helper = load_model(folder)
        check_same_vocabulary(loaded.tokenizer, helper.tokenizer, loaded.info.name, folder.name)
        draft = Draft(loaded.model, helper.model, folder.name)
        rank0 = control.group.rank() == 0
        draft.agree = lambda faster: bool(control.broadcast_json(faster if rank0 else None, "agreeing on the draft"))
    decoder = decoder_for(loaded, decoding, draft)
    if decoder.kv_bits:
        print(f"KV cache: {decoder.kv_bits}-bit from {decoder.kv_start:,} tokens", flush=True)
    if draft is not None:
        print(f"draft: {draft.name}, {decoder.draft_tokens} tokens per step, "
              f"{'auto (rank 0 decides)' if decoder.auto else 'on'}", flush=True)
    return decoder


def rank_prompt_cache(loaded, gb: float | None):
    """The KV caches every rank keeps for later requests (a chat's next turn computes only its new tokens).
    Ranks must keep, drop and reuse alike (each runs the same tokens through its share of the pipeline), so
    each counts a kept cache at the whole model's fp16 bytes per token, not its own share's bytes; a model
    whose config does not give its attention sizes reuses nothing across requests (None)."""
    from workbench.engine.generate import DEFAULT_PROMPT_CACHE_GB, PromptCache
    from workbench.models.catalog import config_kv_cache_bytes

    per_token = config_kv_cache_bytes(loaded.config, context=1)
    if per_token is None:
        return None
    return PromptCache(int((DEFAULT_PROMPT_CACHE_GB if gb is None else gb) * 1e9), bytes_per_token=per_token)


def prepare(loaded, request, context: int | None) -> dict:
    """The broadcast message for one request: templated prompt (with any continued thinking), sampling and
    steering (budgets, effort: `plan_reasoning`, so every rank cuts the thinking at the same token), its
    max_tokens within `context` (the server's decoder's: the model's own unless set; None: unknown). Runs on
    the HTTP thread (the tokenizer only), so a request the model cannot take is refused with 400 before it
    reaches the ranks."""
    from workbench.distributed.server import RequestRefused
    from workbench.engine.generate import encode_prompt, plan_reasoning
    from workbench.engine.job import one_line
    from workbench.errors import UserError

    try:
        prompt, sampling, steering = plan_reasoning(loaded, request)
        prompt_tokens = len(encode_prompt(loaded.tokenizer, prompt))
    except UserError as e:  # e.g. effort off on a model that cannot turn its thinking off
        raise RequestRefused(str(e)) from None
    except Exception as e:  # noqa: BLE001 - chat templates and tokenizers raise anything on odd input
        raise RequestRefused(f"cannot build the prompt: {one_line(e)}") from None
    sampling = sampling.to_dict()
    limit = context
    if limit is not None:
        room = limit - prompt_tokens
        asked = request.sampling.max_tokens
        if room < 1 or (asked is not None and asked > room):
            raise RequestRefused(
                f"This model's maximum context length is {limit} tokens. However, you requested "
                f"{prompt_tokens + (asked or 1)} tokens ({prompt_tokens} in the messages, {asked or 1} in the "
                "completion). Please reduce the length of the messages or completion.", "context_length_exceeded")
        sampling["max_tokens"] = min(sampling["max_tokens"] or room, room)
    if sampling["seed"] is None:  # every rank must sample alike
        sampling["seed"] = random.randrange(2**31)
    return {"prompt": prompt, "prompt_tokens": prompt_tokens, "sampling": sampling, "steering": steering.to_dict()}


def _submit(inbox: queue.Queue, loaded, request):
    from workbench.engine.job import Job

    message = prepare(loaded, request, loaded.decoder.context)
    job = Job.for_request(request)  # its loop check asks to answer now (answer_on_loop) or cancels
    inbox.put((message, job))
    return job


@dataclass
class Generation:
    """One request's generation on this rank: a paused stream of events, resumed a slice at a time."""

    message: dict
    job: object = None  # rank 0's Job; None on the others
    events: object = None
    tokens: int = 0  # tokens generated so far (the stop check runs once per token)
    cancelled: bool = False
    steers: list = field(default_factory=list)  # steering requests rank 0 broadcast, oldest first

    def take_steer(self) -> str | None:
        return self.steers.pop(0) if self.steers else None


def lead(loaded, control, inbox: queue.Queue, shards: list, tick: float) -> None:
    """Rank 0: takes requests, and each turn broadcasts which generation runs its next slice (new ones,
    cancels and steering requests such as answer now with it), round-robin over up to MAX_ACTIVE, so a long
    request does not hold up the others. Every rank hands a steering request to its generation at the same
    point (before the slice), so all of them cut the thinking at the same token.
    While idle, a ping every `tick` seconds (the others sleep as long between pings, so nobody spins in
    the collective)."""
    from workbench.engine.events import Done, Failed, Stats

    running: dict[int, Generation] = {}
    order: list[int] = []  # round-robin: the next to run first
    waiting: list = []
    ids = itertools.count()

    def stop() -> None:  # Ctrl-C or SIGTERM: let the others end too
        for job in [g.job for g in running.values()] + [job for _, job in waiting]:
            job.put(Failed("the server is stopping"))
        control.broadcast_json({"kind": "stop"})

    while True:
        try:
            item = inbox.get(timeout=tick) if not (running or waiting) else inbox.get_nowait()
        except queue.Empty:
            item = False
        while item is not False:  # this and everything else that came meanwhile
            if item is None:
                return stop()
            waiting.append(item)
            try:
                item = inbox.get_nowait()
            except queue.Empty:
                item = False
        for message, job in [w for w in waiting if w[1].stop_reason()]:  # gone before they started
            waiting.remove((message, job))
            job.put(Done(Stats(finish_reason="cancelled")))
        started = []
        while waiting and len(running) < MAX_ACTIVE:
            message, job = waiting.pop(0)
            n = next(ids)
            running[n] = Generation(message, job)
            order.append(n)
            started.append({"id": n, **message})
        if not order:
            control.broadcast_json({"kind": "ping"})
            continue
        cancel = [n for n in order if running[n].job.stop_reason()]
        steer = [[n, kind] for n in order for kind in iter(running[n].job.take_steer, None)]
        turn = {"kind": "turn", "start": started, "cancel": cancel, "steer": steer, "run": order[0]}
        control.broadcast_json(turn)
        finished, peaks = take_turn(loaded, control, running, turn)
        order = [n for n in order[1:] + order[:1] if n not in finished]
        for shard, peak in zip(shards, peaks):
            shard["peak_gb"] = max(shard.get("peak_gb", 0.0), peak)


def follow(loaded, control, tick: float) -> None:
    """The other ranks: wait for rank 0's next message (it pings every `tick` s while idle) and do the same work."""
    running: dict[int, Generation] = {}
    while True:
        message = control.broadcast_json(None)
        if message["kind"] == "stop":
            return
        if message["kind"] == "turn":
            for start in message["start"]:
                running[start["id"]] = Generation(start)
            take_turn(loaded, control, running, message)
        else:  # a ping: the next comes a tick from now (a request arriving sooner waits for us at most a tick)
            time.sleep(tick)


def take_turn(loaded, control, running: dict, turn: dict) -> tuple[set, list[float]]:
    """Every rank alike: cancelled generations run to their end (one more token), then `turn["run"]` runs
    SLICE tokens. Returns the ids that finished and, when some did, every rank's peak memory (GB)."""
    import mlx.core as mx

    for n in turn["cancel"]:
        running[n].cancelled = True
    for n, kind in turn["steer"]:
        running[n].steers.append(kind)
    finished = set()
    for n in [*turn["cancel"], *([turn["run"]] if turn["run"] not in turn["cancel"] else [])]:
        if run_slice(loaded, control.watchdog, running[n], None if n in turn["cancel"] else SLICE):
            finished.add(n)
            del running[n]
    if not finished:
        return finished, []
    return finished, [r["peak"] for r in control.gather_json({"peak": mx.get_peak_memory() / 1e9})]


def run_slice(loaded, watchdog, generation: Generation, tokens: int | None) -> bool:
    """Resume one generation for `tokens` more tokens (None: to its end). True when it has ended."""
    from workbench.engine.events import Sampling
    from workbench.engine.generate import Steering, stream_prompt

    message = generation.message
    if generation.events is None:
        def stop():
            generation.tokens += 1
            if generation.tokens == 1:
                watchdog.relabel("generating")  # the prompt is processed: from here, one deadline per token
            watchdog.beat()  # a token arrived: the collectives inside it completed
            return "cancelled" if generation.cancelled else None

        generation.events = stream_prompt(loaded.model, loaded.tokenizer, message["prompt"],
                                          Sampling.from_dict(message["sampling"]), stop,
                                          Steering.from_dict(message["steering"], take=generation.take_steer),
                                          getattr(loaded, "prompt_cache", None), getattr(loaded, "decoder", None))
    # A long prompt on a big model takes a while before the first token: give it time per token.
    first = generation.tokens == 0
    seconds = max(watchdog.seconds, message["prompt_tokens"] * PREFILL_SECONDS_PER_TOKEN) if first else None
    end = None if tokens is None else generation.tokens + tokens
    with watchdog.guard("processing the prompt" if first else "generating", seconds):
        for event in generation.events:
            if generation.job is not None:
                generation.job.put(event)
            if end is not None and generation.tokens >= end:
                return False
    return True


if __name__ == "__main__":
    sys.exit(main())
