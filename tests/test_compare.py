"""`workbench compare`: variants, inspection per response, gold checks, the saved compare session."""

import json

import pytest

from workbench.cli import build_parser
from workbench.commands import compare
from workbench.errors import UserError
from workbench.sessions import Store
from workbench.sessions.compare import variants


def run(*argv):
    return compare.main(build_parser().parse_args(["compare", *argv]))


def test_two_models_headless_json_with_gold(taught_model, tiny_model, capsys):
    status = run("What is 12+30?", "--model", str(taught_model), "--model", str(tiny_model),
                 "--temp", "0", "--max-tokens", "80", "--gold", "42", "--json")
    assert status == 0
    report = json.loads(capsys.readouterr().out)
    taught, tiny = report["results"]
    assert (taught["label"], tiny["label"]) == (f"model={taught_model}", f"model={tiny_model}")
    assert taught["model"] == taught_model.name and tiny["model"] == tiny_model.name
    assert "\\boxed{42}" in taught["answer"] and taught["verdict"]["score"] == 1.0
    assert tiny["verdict"]["score"] == 0.0
    for r in (taught, tiny):
        assert r["status"] == "complete" and r["stats"]["thinking_tokens"] + r["stats"]["answer_tokens"] > 0
        assert set(r["inspection"]) >= {"tokens", "markers", "steps", "language", "loops", "consistency"}
    with Store.open() as store:
        session = store.session(report["session"])
    assert session["kind"] == "compare"
    assert [t["label"] for t in session["turns"][1:]] == [taught["label"], tiny["label"]]
    assert session["turns"][1]["content"] == taught["answer"]


def test_temperatures_and_samples_on_one_model_without_saving(taught_model, capsys):
    status = run("What is 12+30?", "--model", str(taught_model), "--temp", "0", "--temp", "1.5",
                 "--samples", "2", "--max-tokens", "20", "--no-save")
    assert status == 0
    out = capsys.readouterr().out
    labels = ["temp=0.0 seed=0", "temp=0.0 seed=1", "temp=1.5 seed=0", "temp=1.5 seed=1"]
    for label in labels:
        assert f"== {label} ==" in out
    table = out[out.rindex("status"):]
    assert table.splitlines()[0].split() == ["status"] + ["complete"] * 4
    with Store.open() as store:
        assert store.list_sessions() == []


def test_greedy_samples_agree_and_variants_are_required(taught_model, capsys):
    with pytest.raises(UserError, match="two or more variants"):
        run("q", "--model", str(taught_model))
    assert run("What is 12+30?", "--model", str(taught_model), "--samples", "2", "--temp", "0",
               "--max-tokens", "30", "--json", "--no-save") == 0
    a, b = json.loads(capsys.readouterr().out)["results"]
    assert (a["seed"], b["seed"]) == (0, 1) and a["thinking"] == b["thinking"]  # greedy: seeds do not matter


def test_a_model_that_fails_to_load_is_reported_and_the_rest_still_run(tmp_path, taught_model, capsys):
    status = run("What is 12+30?", "--model", str(tmp_path / "nope"), "--model", str(taught_model),
                 "--max-tokens", "10", "--json")
    assert status == 1
    bad, good = json.loads(capsys.readouterr().out)["results"]
    assert "nope" in bad["error"] and good["status"] == "complete"


def test_variants_cover_every_combination_with_labels_naming_what_differs():
    args = build_parser().parse_args(["compare", "q", "--adapter", "none", "--adapter", "ad1", "--temp", "0.2",
                                      "--temp", "0.8", "--samples", "2", "--seed", "10"])
    got = variants(args.model, args.adapter, args.temp, args.samples, args.seed)
    assert [v["label"] for v in got] == [
        f"adapter={a} temp={t} seed={s}" for a in ("none", "ad1") for t in (0.2, 0.8) for s in (10, 11)]
    assert {v["adapter"] for v in got} == {None, "ad1"} and {v["model"] for v in got} == {None}
