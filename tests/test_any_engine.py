"""Every consumer takes any engine: `--endpoint URL` on eval, train rejection and compare, against
`workbench cluster serve --local-ranks 2` serving r1-nano (one server for the module). The served
model's card says where it was served and claims no sha256; its verdicts are the local model's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, workbench_env
from workbench.cli import main as cli_main
from workbench.engine.choose import open_engine
from workbench.engine.remote import RemoteEngine
from workbench.engine.events import Answer, Loaded, ModelInfo, Stats, Think
from workbench.engine.job import Job
from workbench.engine.scripted import Script, ScriptedEngine
from workbench.engine.thread import ThreadEngine
from workbench.eval import card as cards


def workbench(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workbench", *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT, env=workbench_env(PYTHONPATH=str(ROOT)))


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """r1-nano over two local ranks; the URL. Stopped (the whole process group) at the end of the module."""
    from test_distributed_cluster import Cluster

    from workbench.models.local import resolve_model

    with pytest.MonkeyPatch.context() as patch:  # Cluster keeps its log beside $WORKBENCH_HOME
        patch.setenv("WORKBENCH_HOME", str(tmp_path_factory.mktemp("cluster") / "home"))
        cluster = Cluster(resolve_model("r1-nano"), "--deadline", "60")  # generous: CI shares 2 cores
    yield cluster.url
    cluster.stop()


def test_open_engine_chooses_by_endpoint(monkeypatch):
    monkeypatch.setenv("WORKBENCH_TOKEN", "s3cret")
    remote = open_engine("127.0.0.1:8123/")
    assert isinstance(remote, RemoteEngine)
    assert (remote.endpoint, remote.token) == ("http://127.0.0.1:8123", "s3cret")
    assert open_engine("http://h:1", token="given").token == "given"
    local = open_engine(None)
    try:
        assert isinstance(local, ThreadEngine)
    finally:
        local.close()


def test_an_unreachable_endpoint_is_one_line(tmp_path):
    done = workbench("eval", "--endpoint", "http://127.0.0.1:9", "--suite", "arithmetic", "--limit", "1", timeout=120)
    assert done.returncode == 2
    assert done.stderr.startswith("workbench: error: http://127.0.0.1:9: cannot reach the server")
    assert "Traceback" not in done.stderr
    out = tmp_path / "kept.jsonl"
    done = workbench("train", "rejection", "--endpoint", "http://127.0.0.1:9", "--out", str(out), timeout=120)
    assert done.returncode == 2 and "cannot reach the server" in done.stderr and "Traceback" not in done.stderr


def test_served_cards_stay_in_their_folder_whatever_the_server_calls_its_model(workbench_home):
    folder = cards.served_cards_dir("http://10.0.0.2:8123", "../../etc/x\n\x1b[31mred")
    assert folder.parent == workbench_home / "evals" / "served"
    assert folder.name == "10.0.0.2_8123-.._.._etc_x_31mred"  # one name: no separator, no control character


@pytest.mark.slow
def test_eval_against_a_cluster(served, workbench_home, capsys):
    done = workbench("eval", "--endpoint", served, "--suite", "arithmetic", "--limit", "5", "--json")
    assert done.returncode == 0, done.stderr
    card = json.loads(done.stdout)
    assert card["served"] == {"endpoint": served, "model": "r1-nano"}
    assert card["model"] == "r1-nano" and card["model_path"] is None
    assert card["model_sha256"] is None and card["model_files"] is None  # the weights are on the server
    assert card["sampling"] == {"temperature": None, "top_p": None, "max_tokens": None}  # left to the server
    assert card["n"] == 5 and card["unjudged"] == 0
    assert all(s["score"] is not None and s["finish_reason"] == "stop" for it in card["items"] for s in it["samples"])
    port = served.rsplit(":", 1)[1]
    written = sorted((workbench_home / "evals" / "served" / f"127.0.0.1_{port}-r1-nano").glob("*.json"))
    assert [json.loads(p.read_text())["items"] for p in written] == [card["items"]]
    markdown = written[0].with_suffix(".md").read_text()
    assert f"| served by | {served}, as r1-nano" in markdown and "model sha256" not in markdown
    assert cli_main(["evals", "--json"]) == 0  # listed after the local models' cards, never stale
    rows = json.loads(capsys.readouterr().out)
    assert [(r["model"], r["file"], r["stale"]) for r in rows if r["file"].startswith(str(workbench_home))] == [
        (f"r1-nano @ {served}", str(written[0]), False)]

    # The same suite on the same weights loaded here: item for item the same answers and verdicts.
    from workbench.eval.runner import EvalOptions, run_eval

    local, _ = run_eval(EvalOptions(suite="arithmetic", limit=5), progress_stream=open(os.devnull, "w"))
    assert local["served"] is None and len(local["model_sha256"]) == 64
    verdicts = lambda c: [(s["extracted"], s["correct"]) for it in c["items"] for s in it["samples"]]  # noqa: E731
    assert verdicts(card) == verdicts(local)
    assert card["correct"] >= 3  # r1-nano: ~95% greedy on this suite


@pytest.mark.slow
def test_rejection_sampling_from_a_cluster(served, tmp_path):
    from workbench.train.data import load_examples
    from workbench.train.sft import read_chats, reply_text
    from workbench.verify import get_verifier

    out = tmp_path / "kept.jsonl"
    done = workbench("train", "rejection", "--endpoint", served, "--suite", "arithmetic", "--limit", "3", "-k", "2",
                     "--temp", "1.0", "--max-tokens", "300", "--out", str(out))
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert f"kept {len(rows)} of 6 completions" in done.stdout and "prompt 3/3" in done.stderr
    assert rows  # r1-nano is right ~90% of the time at temperature 1.0
    answers = {e["prompt"]: e for e in load_examples("arithmetic", 3, 0, "train")[:3]}
    for row in rows:
        user, assistant = row["messages"]
        assert assistant["content"].startswith("<think>\n")
        completion = assistant["content"][len("<think>\n"):]
        example = {**answers[user["content"]], "think_in_prompt": True}
        assert get_verifier("math")(completion, example).correct
        assert get_verifier("format")(completion, example).correct
        assert "</think>" in reply_text(assistant)
    assert len(read_chats(out)) == len(rows)  # what it writes, `train sft` reads


@pytest.mark.slow
def test_compare_against_a_cluster(served):
    done = workbench("compare", "What is 12+30?", "--endpoint", served, "--temp", "0", "--temp", "1", "--seed", "3",
                     "--gold", "42", "--no-save", "--json")
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)["results"]
    assert [r["temperature"] for r in results] == [0.0, 1.0]
    assert all(r["model"] == "r1-nano" and r["answer"] and "error" not in r for r in results)
    assert results[0]["verdict"]["score"] == 1.0  # greedy r1-nano adds 12 and 30


class ServedScripts(ScriptedEngine):
    """Scripted replies from a model served elsewhere: its info names the endpoint and has no profile."""

    def load(self, model=None, adapter=None, trust_remote_code=False):
        self.info = ModelInfo(name="big", path="http://10.0.0.2:8123", location="http://10.0.0.2:8123")
        job = Job()
        job.put(Loaded(self.info))
        return job


def reply(thinking: str, answer: str, finish: str = "stop") -> Script:
    return Script([Think(thinking, 1), Answer(answer, 1)], stats=Stats(finish_reason=finish, thinking_closed=True))


def test_rejection_writes_each_prompt_as_it_goes_and_a_lost_server_is_one_line(tmp_path):
    from workbench.errors import UserError
    from workbench.train.rejection import rejection_sample

    suite = tmp_path / "suite.jsonl"
    suite.write_text("".join(json.dumps({"prompt": f"What is {n}+{n}?", "answer": str(2 * n)}) + "\n" for n in (2, 3, 4, 5)))
    engine = ServedScripts([reply("2+2=4.", "The answer is \\boxed{4}."), reply("2+2=5.", "The answer is \\boxed{5}."),
                            reply("3+3=6.", "The answer is \\boxed{6}.", "length"),  # cut at the limit: not a whole trace
                            reply("3+3=6.", "The answer is \\boxed{6}."),
                            Script(fail="http://10.0.0.2:8123: lost rank 1 (mac-b.local)")])
    out = tmp_path / "kept.jsonl"
    with pytest.raises(UserError, match=rf"sampling stopped at prompt 3 of 3: .*lost rank 1 .*\(2 verified chats kept in {out}\)"):
        rejection_sample(engine, str(suite), ["math", "format"], k=2, limit=3, max_tokens=50, temperature=None, seed=7,
                         out=out)
    rows = [json.loads(line)["messages"] for line in out.read_text().splitlines()]
    assert rows == [[{"role": "user", "content": "What is 2+2?"},
                     {"role": "assistant", "content": "<think>\n2+2=4.</think>The answer is \\boxed{4}."}],
                    [{"role": "user", "content": "What is 3+3?"},
                     {"role": "assistant", "content": "<think>\n3+3=6.</think>The answer is \\boxed{6}."}]]
    # each sample its own seed; settings not given are left to the server, whose model's profile we cannot see
    assert [(r.sampling.seed, r.sampling.temperature, r.sampling.top_p, r.sampling.max_tokens) for r in engine.requests] == [
        (7 * 1_000_003 + i, None, None, 50) for i in range(5)]
