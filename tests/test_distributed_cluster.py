"""Two ranks over loopback (and, when we may make them, one per network namespace over veth: see
tests/netns.py): sharded tensor and pipeline generation equals one process token for token; the
cluster endpoint streams both phases (across namespaces, to a client on the other host); a rank
that dies (or freezes) mid-generation makes the survivor exit naming it, and the client gets an
error instead of hanging. Every subprocess is bounded by a timeout."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import ROOT, WORKED, workbench_env
from netns import ADDRESSES, needs_namespaces, two_hosts
from workbench.engine.events import Answer, ChatRequest, Done, Drafted, Failed, Loaded, Sampling, Think
from workbench.engine.remote import RemoteEngine

pytestmark = pytest.mark.slow
QUESTION = "What is 12+30?"
LAUNCH = Path(sys.executable).with_name("mlx.launch")

# Each rank loads the model sharded both ways and prints its greedy tokens.
GREEDY = r"""
import json, sys
from pathlib import Path
import mlx.core as mx
from mlx_lm.generate import generate_step
from workbench.distributed.shard import load_sharded
from workbench.engine.events import Message
from workbench.engine.generate import encode_prompt
from workbench.engine.prompt import build_prompt

group = mx.distributed.init(strict=True, backend="ring")
out = {}
for mode, split in (("pipeline", [1, 3]), ("tensor", None)):
    loaded, shard = load_sharded(Path(sys.argv[1]), group, mode, split)
    prompt = build_prompt(loaded.tokenizer, (Message("user", sys.argv[2]),))
    tokens = encode_prompt(loaded.tokenizer, prompt)
    out[mode] = [t for t, _ in generate_step(mx.array(tokens), loaded.model, max_tokens=48)]
    out[mode + "_layers"] = [shard.first_layer, shard.end_layer]
for name, folder in (("llama", sys.argv[3]), ("deepseek", sys.argv[4])):
    other, _ = load_sharded(Path(folder), group, "pipeline", [3, 1])
    out[name] = [t for t, _ in generate_step(mx.array([10, 20, 30, 40]), other.model, max_tokens=32)]
print("RESULT", group.rank(), json.dumps(out), flush=True)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env(**extra) -> dict:
    return workbench_env(PYTHONPATH=str(ROOT), **extra)


@pytest.fixture(scope="module")
def four_layer_model(tmp_path_factory) -> Path:
    """Taught like `taught_model`, with 4 layers (for an uneven pipeline split) and heads that halve."""
    from workbench.engine.tiny import make_tiny_model, teach

    folder = make_tiny_model(tmp_path_factory.mktemp("models") / "tiny-four", seed=2, layers=4, heads=4, kv_heads=2)
    teach(folder, [(QUESTION, WORKED.format(a=12, b=30, c=42))], steps=150)
    (folder / "profile.toml").write_text("temperature = 0.0\nmax_tokens = 200\n")
    return folder


@pytest.fixture(scope="module")
def llama_model(tmp_path_factory) -> Path:
    """A random tiny Llama, weights scaled up so that greedy decoding wanders instead of repeating."""
    import mlx.core as mx
    from mlx.utils import tree_map
    from mlx_lm.models import llama

    from workbench.engine.tiny import save_model, tiny_config, write_char_tokenizer

    folder = tmp_path_factory.mktemp("models") / "tiny-llama"
    config = tiny_config(write_char_tokenizer(folder), layers=4)
    config.update(model_type="llama", architectures=["LlamaForCausalLM"], tie_word_embeddings=False)
    mx.random.seed(0)
    model = llama.Model(llama.ModelArgs.from_dict(config))
    model.update(tree_map(lambda p: p * 4, model.parameters()))
    save_model(folder, model, config)
    return folder


@pytest.fixture(scope="module")
def deepseek_model(tmp_path_factory) -> Path:
    """A random tiny DeepSeek-V3 (MoE, MLA): pipelined by mlx-lm's own `pipeline()` with our split."""
    import mlx.core as mx
    from mlx.utils import tree_map
    from mlx_lm.models import deepseek_v3

    from workbench.engine.tiny import EOS, SPECIAL, save_model, write_char_tokenizer

    folder = tmp_path_factory.mktemp("models") / "tiny-deepseek"
    config = dict(model_type="deepseek_v3", vocab_size=write_char_tokenizer(folder), hidden_size=64,
                  intermediate_size=128, moe_intermediate_size=32, num_hidden_layers=4, num_attention_heads=4,
                  num_key_value_heads=4, n_shared_experts=1, n_routed_experts=4, num_experts_per_tok=2,
                  kv_lora_rank=16, q_lora_rank=32, qk_rope_head_dim=8, v_head_dim=16, qk_nope_head_dim=16,
                  first_k_dense_replace=1, max_position_embeddings=4096, eos_token_id=SPECIAL.index(EOS))
    mx.random.seed(0)
    model = deepseek_v3.Model(deepseek_v3.ModelArgs.from_dict(config))
    model.update(tree_map(lambda p: p * 3, model.parameters()))
    save_model(folder, model, config)
    return folder


def single_process_tokens(folder: Path, question: str, n: int = 48) -> list[int]:
    import mlx.core as mx
    from mlx_lm.generate import generate_step

    from workbench.engine.events import Message
    from workbench.engine.generate import encode_prompt
    from workbench.engine.loader import load_model
    from workbench.engine.prompt import build_prompt

    loaded = load_model(folder)
    tokens = encode_prompt(loaded.tokenizer, build_prompt(loaded.tokenizer, (Message("user", question),)))
    return [t for t, _ in generate_step(mx.array(tokens), loaded.model, max_tokens=n)]


def results(stdout: str) -> dict[int, dict]:
    return {int(line.split()[1]): json.loads(line.split(" ", 2)[2]) for line in stdout.splitlines() if line.startswith("RESULT ")}


def test_two_ranks_match_one_process_token_for_token(four_layer_model, llama_model, deepseek_model, tmp_path):
    script = tmp_path / "greedy.py"
    script.write_text(GREEDY)
    argv = [str(script), str(four_layer_model), QUESTION, str(llama_model), str(deepseek_model)]
    out = subprocess.run([str(LAUNCH), "-n", "2", "--backend", "ring", "--starting-port", str(free_port()), "--",
                          sys.executable, *argv], capture_output=True, text=True, timeout=180, env=env())
    ranks = results(out.stdout)
    assert set(ranks) == {0, 1}, out.stdout + out.stderr
    expected = single_process_tokens(four_layer_model, QUESTION)
    assert len(set(expected)) > 5  # a taught model says something, not one token repeated
    for r in (0, 1):
        assert ranks[r]["pipeline"] == expected
        assert ranks[r]["tensor"] == expected
    assert ranks[0]["pipeline_layers"] == [0, 1] and ranks[1]["pipeline_layers"] == [1, 4]  # --split 1,3
    for name, folder in (("llama", llama_model), ("deepseek", deepseek_model)):
        expected = single_process_raw(folder)
        assert len(set(expected)) > 5
        assert ranks[0][name] == ranks[1][name] == expected, name


def single_process_raw(folder: Path) -> list[int]:
    import mlx.core as mx
    from mlx_lm.generate import generate_step
    from mlx_lm.utils import load_model

    model, _ = load_model(folder)
    return [t for t, _ in generate_step(mx.array([10, 20, 30, 40]), model, max_tokens=32)]


class Cluster:
    """`workbench cluster serve --local-ranks 2` in the background, stopped for sure at the end."""

    def __init__(self, model: Path, *extra: str):
        extra = extra if "--hostfile" in extra else ("--local-ranks", "2", *extra)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(Path(os.environ["WORKBENCH_HOME"]).parent / f"cluster-{self.port}.log", "w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "workbench", "cluster", "serve", "--model", str(model),
             "--port", str(self.port), "--starting-port", str(free_port()), "--deadline", "5", *extra],
            stdout=self.log, stderr=subprocess.STDOUT, env=env(), start_new_session=True)
        deadline = time.monotonic() + 120
        while "serving " not in self.output():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                output = self.output()
                self.stop()
                pytest.fail("cluster did not start:\n" + output)
            time.sleep(0.2)

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def pids(self) -> list[int]:
        with urllib.request.urlopen(f"{self.url}/v1/cluster", timeout=10) as r:
            return [rank["pid"] for rank in json.loads(r.read())["ranks"]]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.log.close()


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):  # ESRCH: it went while being read
        return False
    return state not in ("Z", "X")


def test_cluster_endpoint_streams_both_phases(four_layer_model, tmp_path):
    """`cluster init` on this machine twice over, then `cluster serve --hostfile`, tensor parallel, behind a token
    (it reaches rank 0 in a file): both phases stream, status shows the ranks."""
    hostfile = tmp_path / "hostfile.json"
    init = subprocess.run([sys.executable, "-m", "workbench", "cluster", "init", "--hosts", "127.0.0.1,127.0.0.1",
                           "--model", str(four_layer_model), "--output", str(hostfile)],
                          capture_output=True, text=True, timeout=120, env=env())
    assert init.returncode == 0, init.stderr
    assert [h["ips"] for h in json.loads(hostfile.read_text())["hosts"]] == [["127.0.0.1"], ["127.0.0.1"]]
    cluster = Cluster(four_layer_model, "--hostfile", str(hostfile), "--tensor", "--token", "t0ken")
    try:
        refused = RemoteEngine(cluster.url, token="")
        assert "401" in refused.load().collect()[2].message
        remote = RemoteEngine(cluster.url, token="t0ken")
        assert isinstance(remote.load().collect()[2], Loaded)
        events = list(remote.generate(ChatRequest.single(QUESTION, Sampling(temperature=0))))
        thinking = "".join(e.text for e in events if isinstance(e, Think))
        answer = "".join(e.text for e in events if isinstance(e, Answer))
        assert isinstance(events[-1], Done), events[-1]
        assert "12+30" in thinking and "\\boxed{42}" in answer
        status = subprocess.run([sys.executable, "-m", "workbench", "cluster", "status", "--endpoint", cluster.url],
                                capture_output=True, text=True, timeout=60, env=env(WORKBENCH_TOKEN="t0ken"))
        assert status.returncode == 0, status.stderr
        assert "rank 0 (127.0.0.1)" in status.stdout and "rank 1 (127.0.0.1)" in status.stdout
        assert "1/2 of every layer" in status.stdout
    finally:
        cluster.stop()


def cpu_ticks(pid: int) -> int:
    """User + system CPU time of a process, in clock ticks (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def test_cluster_idles_quietly_and_refuses_bad_requests_without_losing_a_rank(taught_model):
    """Idle ranks sleep; a lone surrogate, a prompt or max_tokens beyond the context set, thinking turned off on a
    model that cannot turn it off get 400 and the ranks
    serve the next request; the official openai client streams thinking and answer."""
    import openai

    cluster = Cluster(taught_model, "--context", "2048")
    try:
        ranks = cluster.pids()
        time.sleep(1)  # settle after loading
        before = [cpu_ticks(pid) for pid in ranks]
        time.sleep(2)  # idle
        spent = [cpu_ticks(pid) - b for pid, b in zip(ranks, before)]
        ticks = os.sysconf("SC_CLK_TCK")
        assert max(spent) < ticks * 2 * 0.1, f"idle ranks used {spent} ticks in 2 s (a busy core: {2 * ticks})"

        def post(body: bytes) -> tuple[int, str]:
            request = urllib.request.Request(f"{cluster.url}/v1/chat/completions", body,
                                             {"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=60) as r:
                    return r.status, r.read().decode()
            except urllib.error.HTTPError as e:
                return e.code, e.read().decode()

        assert post(b'{"messages": [{"role": "user", "content": "\\ud800"}]}')[0] == 400
        status, text = post(json.dumps({"messages": [{"role": "user", "content": "x"}], "max_tokens": 10**6}).encode())
        assert status == 400 and "maximum context length is 2048 tokens" in text  # --context (the model's own: 4096)
        status, text = post(json.dumps({"messages": [{"role": "user", "content": "x" * 5000}]}).encode())
        assert status == 400 and "context_length_exceeded" in text
        status, text = post(json.dumps({"messages": [{"role": "user", "content": "x"}], "reasoning_effort": "off"}).encode())
        assert status == 400 and "cannot answer without thinking" in text  # its template has no enable_thinking
        client = openai.OpenAI(base_url=f"{cluster.url}/v1", api_key="none", max_retries=0, timeout=60)
        thinking, answer = [], []
        for chunk in client.chat.completions.create(model=client.models.list().data[0].id, stream=True, temperature=0,
                                                   messages=[{"role": "user", "content": QUESTION}]):
            if chunk.choices:
                delta = chunk.choices[0].delta
                thinking.append(getattr(delta, "reasoning_content", None) or "")
                answer.append(delta.content or "")
        assert "12+30" in "".join(thinking) and "\\boxed{42}" in "".join(answer)
        assert all(running(pid) for pid in ranks)
    finally:
        cluster.stop()


def long_generation(url: str):
    remote = RemoteEngine(url)
    remote.load().collect()
    job = remote.generate(ChatRequest.single("Tell me everything.", Sampling(temperature=0, max_tokens=4000)))
    first = job.get(timeout=60)
    assert not isinstance(first, Failed), first
    return job


def test_a_long_request_does_not_hold_up_a_short_one(tiny_model):
    """Random weights generate until max_tokens: the short request is answered while the long one streams."""
    cluster = Cluster(tiny_model)
    try:
        long = long_generation(cluster.url)
        remote = RemoteEngine(cluster.url)
        remote.load().collect()
        *_, done = remote.generate(ChatRequest.single("Hi.", Sampling(temperature=0, max_tokens=5))).collect()
        assert isinstance(done, Done) and done.stats.generated_tokens == 5, done
        assert not long.finished.is_set(), "the short request waited for the long one to end"
        long.cancel()
        *_, last = long.collect()
        assert isinstance(last, Done) and last.stats.finish_reason == "cancelled", last
    finally:
        cluster.stop()


@pytest.mark.parametrize("how", ["killed", "frozen"])
def test_losing_a_rank_mid_generation_ends_the_survivor_and_fails_the_client(tiny_model, how):
    """Killed: the ring notices the closed socket. Frozen (SIGSTOP, like a dropped link): the deadline does."""
    for attempt in range(3):  # a loaded machine may read the first token after all 4,000 were made: again
        cluster = Cluster(tiny_model)  # random weights: generates until max_tokens, so it is mid-generation
        rank0, rank1 = cluster.pids()
        job = long_generation(cluster.url)
        os.kill(rank1, signal.SIGKILL if how == "killed" else signal.SIGSTOP)
        last = None
        for last in job:  # ends: the job cannot hang (the survivor fails it, then exits)
            pass
        if not (isinstance(last, Done) and last.stats.finish_reason == "length") or attempt == 2:
            break
        if how == "frozen":
            os.kill(rank1, signal.SIGKILL)
        cluster.stop()
    try:
        assert isinstance(last, Failed) and "lost rank 1 (127.0.0.1)" in last.message, last
        if how == "frozen":  # no socket error to see: the deadline found it
            assert "no answer for 5 s while" in last.message  # generating, or in the per-8-token stop check
        for _ in range(300):  # bounded wait (30 s) for the survivor to exit
            if not running(rank0):
                break
            time.sleep(0.1)
        assert not running(rank0), "rank 0 still running 30 s after losing rank 1"
        if how == "frozen":
            os.kill(rank1, signal.SIGKILL)
        cluster.proc.wait(timeout=30)  # mlx.launch relays rank 0's last words before it ends
        assert "workbench: error: lost rank 1 (127.0.0.1)" in cluster.output()
    finally:
        cluster.stop()


@needs_namespaces
def test_two_namespaces_over_veth_match_one_process(four_layer_model, llama_model, deepseek_model, tmp_path):
    script = tmp_path / "greedy.py"
    script.write_text(GREEDY)
    argv = [sys.executable, str(script), str(four_layer_model), QUESTION, str(llama_model), str(deepseek_model)]
    with two_hosts() as hosts:
        outputs = hosts.outputs(hosts.start_ranks(argv, env(), hosts.ring_hostfile(tmp_path / "ring.json"),
                                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    ranks = {**results(outputs[0]), **results(outputs[1])}
    assert set(ranks) == {0, 1}, "\n".join(outputs)
    expected = single_process_tokens(four_layer_model, QUESTION)
    assert ranks[0]["pipeline"] == ranks[1]["tensor"] == expected


# A client on host b: loads, streams one chat, prints what it saw.
CLIENT = r"""
import json, sys
from workbench.engine.events import Answer, ChatRequest, Sampling, Think
from workbench.engine.remote import RemoteEngine

remote = RemoteEngine(sys.argv[1])
loaded = remote.load().collect()[-1]
events = list(remote.generate(ChatRequest.single(sys.argv[2], Sampling(temperature=0))))
print(json.dumps({"loaded": type(loaded).__name__, "last": type(events[-1]).__name__, "last_repr": repr(events[-1]),
                  "thinking": "".join(e.text for e in events if isinstance(e, Think)),
                  "answer": "".join(e.text for e in events if isinstance(e, Answer))}))
"""


@needs_namespaces
def test_cluster_endpoint_across_namespaces_streams_both_phases(four_layer_model, tmp_path):
    """The serving ranks one per host (argv as `cluster serve` builds it), rank 0 serving on its own address behind
    a token; a client on the other host streams both phases, `cluster status` names each rank by its address."""
    token_file = tmp_path / "token"
    token_file.write_text("t0ken")
    url = f"http://{ADDRESSES[0]}:8123"
    argv = [sys.executable, "-m", "workbench.distributed.rank", "--model", str(four_layer_model), "--mode", "tensor",
            "--host", ADDRESSES[0], "--port", "8123", "--deadline", "20", "--hosts", ",".join(ADDRESSES),
            "--backend", "ring", "--token-file", str(token_file)]
    client = tmp_path / "client.py"
    client.write_text(CLIENT)
    logs = [tmp_path / f"rank{r}.log" for r in (0, 1)]
    with two_hosts() as hosts:
        ring = hosts.ring_hostfile(tmp_path / "ring.json")
        ranks = []
        for r, log in enumerate(logs):
            with open(log, "w") as out:
                ranks.append(hosts.start(r, argv, env(), ring, stdout=out, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + 120
        while "serving " not in logs[0].read_text():
            if any(p.poll() is not None for p in ranks) or time.monotonic() > deadline:
                pytest.fail("ranks did not start:\n" + "\n".join(log.read_text() for log in logs))
            time.sleep(0.2)
        chat = hosts.run(1, [sys.executable, str(client), url, QUESTION], env(WORKBENCH_TOKEN="t0ken"), timeout=120)
        assert chat.returncode == 0, chat.stderr
        seen = json.loads(chat.stdout.splitlines()[-1])
        assert seen["loaded"] == "Loaded" and seen["last"] == "Done", seen["last_repr"]
        assert "12+30" in seen["thinking"] and "\\boxed{42}" in seen["answer"], seen
        status = hosts.run(1, [sys.executable, "-m", "workbench", "cluster", "status", "--endpoint", url],
                           env(WORKBENCH_TOKEN="t0ken"), timeout=60)
        assert status.returncode == 0, status.stderr
        assert f"rank 0 ({ADDRESSES[0]})" in status.stdout and f"rank 1 ({ADDRESSES[1]})" in status.stdout, status.stdout
        ranks[0].send_signal(signal.SIGTERM)  # rank 0 tells rank 1 to stop: both end cleanly
        assert [p.wait(timeout=60) for p in ranks] == [0, 0], "\n".join(log.read_text() for log in logs)


def test_cluster_quantizes_the_kv_cache_and_drafts_as_one_process_does():
    """Each rank quantizes its KV cache and drafts with the whole draft model alike: the greedy answers are one
    process's (a draft never changes a greedy answer), the draft's proposals are counted, and auto's verdict
    (after 256 tokens) is rank 0's on every rank, or the pipeline would part ways."""
    from workbench.engine.decode import AUTO_TOKENS
    from workbench.engine.events import Decoding
    from workbench.engine.thread import ThreadEngine
    from workbench.models.local import resolve_model

    nano = resolve_model("r1-nano")  # heads 32 wide: MLX can quantize its cache
    bad = subprocess.run([sys.executable, "-m", "workbench", "cluster", "serve", "--model", str(nano),
                          "--local-ranks", "2", "--draft-tokens", "0"], capture_output=True, text=True, timeout=60, env=env())
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--draft-tokens must be between 1 and 64" in bad.stderr
    request = ChatRequest.single("What is 999 * 999 * 999?", Sampling(temperature=0, max_tokens=400))  # 280 tokens
    with ThreadEngine() as engine:
        engine.load(nano).collect()
        local = list(engine.generate(ChatRequest(request.messages, request.sampling,
                                                 decoding=Decoding(kv_bits=8, kv_start=0))))
    assert local[-1].stats.kv_bits == 8 and local[-1].stats.generated_tokens > 2 * AUTO_TOKENS  # past auto's verdict
    text = lambda events: "".join(e.text for e in events if isinstance(e, (Think, Answer)))  # noqa: E731
    for extra in (("--kv-bits", "8", "--kv-start", "0"), ("--kv-bits", "8", "--kv-start", "0", "--draft", str(nano))):
        cluster = Cluster(nano, *extra, "--deadline", "60")
        try:
            remote = RemoteEngine(cluster.url)
            remote.load().collect()
            served = list(remote.generate(request))
            assert cluster.output().count("KV cache: 8-bit from 0 tokens") == 2  # each rank decodes so
            drafted = "--draft" in extra
            assert cluster.output().count(f"draft: {nano.name}, 3 tokens per step, auto (rank 0 decides)") == (
                2 if drafted else 0)
            assert (served[-1].stats.draft_proposed > 0) == drafted, served[-1].stats
            assert served[-1].stats.draft_auto in (("kept", "dropped") if drafted else ("",))  # auto decided
            live = [e for e in served if isinstance(e, Drafted)]  # the acceptance so far, streamed as it goes
            assert bool(live) == drafted and all(0 <= e.accepted <= e.proposed for e in live)
        finally:
            cluster.stop()
        assert isinstance(served[-1], Done) and text(served) == text(local) and len(text(local)) > 20


def test_the_ranks_reuse_caches_and_steer_alike_so_answers_are_one_process_s(taught_model):
    """Every rank keeps, drops and reuses the same prompt caches and cuts the thinking at the same token: a
    chat's next turn computes only what is new (its usage says how much was reused), caches small enough that
    the ranks must drop some, two chats at once, a thinking budget, a continued thinking, a minimum; every
    answer is the one process's, token for token (ranks that disagreed would hang the pipeline or garble it)."""
    import threading

    from workbench.engine.events import Message, Steered
    from workbench.engine.thread import ThreadEngine
    from workbench.models.catalog import config_kv_cache_bytes

    greedy = Sampling(temperature=0, max_tokens=80)
    first = ChatRequest.single(QUESTION, greedy)
    with ThreadEngine(prompt_cache_gb=0) as local:
        local.load(taught_model).collect()
        thinking, answer, _ = local.generate(first).collect()
        follow_up = ChatRequest((*first.messages, Message("assistant", answer), Message("user", "And 30+12?")), greedy)
        other = ChatRequest.single("What is 7+5?", greedy)
        other_next = ChatRequest((*other.messages, Message("assistant", "12"), Message("user", QUESTION)), greedy)
        steered = [ChatRequest(first.messages, greedy, max_thinking_tokens=4),
                   ChatRequest(first.messages, greedy, continue_thinking="Hmm, 12 and 30"),
                   ChatRequest(first.messages, greedy, min_thinking_tokens=45, wait_text="Wait, check.")]
        expected = {r: local.generate(r).collect() for r in (follow_up, other, other_next, *steered)}
        expected[first] = (thinking, answer, None)
    # room for about one chat's cache: the ranks must drop the least recently used alike
    per_token = config_kv_cache_bytes(json.loads((taught_model / "config.json").read_text()), context=1)
    cluster = Cluster(taught_model, "--prompt-cache-gb", str(per_token * 150 / 1e9), "--deadline", "60")
    try:
        remote = RemoteEngine(cluster.url)
        remote.load().collect()
        assert remote.capabilities.steer

        def ask(request):
            got = remote.generate(request).collect()
            assert isinstance(got[-1], Done), got[-1]
            assert got[:2] == expected[request][:2], request
            return got[-1].stats

        assert ask(first).prompt_cached_tokens == 0
        reused = ask(follow_up).prompt_cached_tokens
        assert reused > len(QUESTION)  # the first turn's prompt
        assert ask(other).prompt_cached_tokens < len(QUESTION)  # only the template's start is shared
        assert ask(other_next).prompt_cached_tokens > len("What is 7+5?")
        assert ask(follow_up).prompt_cached_tokens < reused  # its cache was dropped for the other chat's
        both = [threading.Thread(target=ask, args=(r,)) for r in (follow_up, other_next)]  # interleaved on the ranks
        for t in both:
            t.start()
        for t in both:
            t.join(timeout=300)
        budget, continued, minimum = (ask(r) for r in steered)
        assert budget.thinking_cut == "budget" and budget.thinking_tokens == 4
        assert continued.prompt_cached_tokens > 0 and minimum.thinking_extended >= 1
        assert sum(isinstance(e, Steered) for e in remote.generate(steered[0])) == 1
        assert cluster.proc.poll() is None and "error" not in cluster.output()
    finally:
        cluster.stop()
