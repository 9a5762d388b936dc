"""The catalog, `workbench models recommend` on fixed memory/disk figures, and the `workbench models` listing."""

from __future__ import annotations

import json
import shutil

import pytest

from workbench.errors import UserError

GB = 1e9
# DeepSeek-R1 README, "Distilled Model Evaluation": AIME 2024 pass@1, MATH-500 pass@1, GPQA Diamond pass@1,
# LiveCodeBench pass@1, CodeForces rating.
README = {
    "r1-distill-qwen-1.5b": (28.9, 83.9, 33.8, 16.9, 954),
    "r1-distill-qwen-7b": (55.5, 92.8, 49.1, 37.6, 1189),
    "r1-distill-qwen-14b": (69.7, 93.9, 59.1, 53.1, 1481),
    "r1-distill-qwen-32b": (72.6, 94.3, 62.1, 57.2, 1691),
    "r1-distill-llama-8b": (50.4, 89.1, 49.0, 39.6, 1205),
    "r1-distill-llama-70b": (70.0, 94.5, 65.2, 57.5, 1633),
}


@pytest.fixture(scope="module")
def catalog():
    from workbench.models.catalog import load_catalog

    return {e.name: e for e in load_catalog()}


def test_catalog_lists_the_models_the_issue_names(catalog):
    for family in README:
        for bits in (4, 6, 8):
            e = catalog[f"{family}-{bits}bit"]
            assert e.repo.startswith("mlx-community/DeepSeek-R1-Distill-") and e.repo.endswith(f"-{bits}bit")
            assert e.bits == bits and e.license and e.sampling["temperature"] == 0.6
    assert {f"r1-0528-qwen3-8b-{b}bit" for b in (4, 6, 8)} <= set(catalog)
    assert catalog["r1-4bit"].cluster_only and catalog["r1-3bit"].cluster_only and catalog["r1-4bit"].params_b == 671
    assert catalog["r1-nano"].embedded and catalog["r1-nano"].repo is None


def test_published_claims_match_the_readme(catalog):
    for family, (aime, math, gpqa, lcb, cf) in README.items():
        e = catalog[f"{family}-4bit"]
        assert e.claims == {"aime24": aime, "math500": math, "gpqa": gpqa, "livecodebench": lcb}
        assert e.codeforces_rating == cf


def test_kv_cache_and_sizes_follow_the_architecture(catalog):
    # well-known figures: Llama-3.1-8B holds 4 GiB of fp16 KV cache at 32k tokens, Qwen2.5-7B 1.75 GiB
    assert catalog["r1-distill-llama-8b-4bit"].kv_cache_bytes() == 4 * 2**30
    assert catalog["r1-distill-qwen-7b-8bit"].kv_cache_bytes() == int(1.75 * 2**30)
    assert catalog["r1-distill-qwen-7b-8bit"].kv_cache_bytes(65536) == 2 * catalog["r1-distill-qwen-7b-8bit"].kv_cache_bytes()
    e4, e8 = catalog["r1-distill-qwen-32b-4bit"], catalog["r1-distill-qwen-32b-8bit"]
    assert 17 * GB < e4.weights_bytes < 20 * GB < e8.weights_bytes  # ~4.5 and ~8.5 bits per weight
    assert e4.memory_bytes() == e4.weights_bytes + e4.kv_cache_bytes() + 1 * GB


def test_find_entry_by_alias_repo_or_repo_name(catalog):
    from workbench.models.catalog import find_entry

    assert find_entry("R1-Distill-Qwen-7B-4bit".lower()).name == "r1-distill-qwen-7b-4bit"
    assert find_entry("mlx-community/DeepSeek-R1-Distill-Qwen-7B-4bit").name == "r1-distill-qwen-7b-4bit"
    assert find_entry("DeepSeek-R1-Distill-Qwen-7B-4bit").name == "r1-distill-qwen-7b-4bit"
    assert find_entry("someone/else") is None


def test_broken_catalog_is_one_line(tmp_path):
    from workbench.models.catalog import load_catalog

    (tmp_path / "c.toml").write_text("[family.x]\ntitle = 'x'\n")
    with pytest.raises(UserError, match="family 'x' is malformed"):
        load_catalog(tmp_path / "c.toml")
    (tmp_path / "d.toml").write_text("[family\n")
    with pytest.raises(UserError, match="not a valid catalog"):
        load_catalog(tmp_path / "d.toml")


def test_recommend_128gb_mac_with_200gb_disk():
    from workbench.models.recommend import recommend

    fits = recommend(128 * GB, 200 * GB)
    good = [f for f in fits if f.fits]
    names = [f.entry.name for f in good]
    assert "r1-distill-llama-70b-4bit" in names and "r1-distill-llama-70b-8bit" in names
    assert not any(f.entry.cluster_only for f in fits)  # R1 671B needs a cluster
    for f in good:
        assert f.memory_needed <= 96 * GB and f.disk_needed <= 200 * GB
    scores = [f.entry.score for f in fits]
    assert scores == sorted(scores, reverse=True)  # best first
    assert "headroom" in good[0].why() and "200.0 GB free" in good[0].why()


def test_recommend_small_machine_small_disk_and_two_machines():
    from workbench.models.recommend import recommend

    small = [f.entry.name for f in recommend(8 * GB, 1.5 * GB) if f.fits]
    assert small == ["r1-distill-qwen-1.5b-6bit", "r1-distill-qwen-1.5b-4bit"]  # 8-bit: 1.9 GB download
    one = {f.entry.name for f in recommend(16 * GB, 100 * GB) if f.fits}
    two = {f.entry.name for f in recommend(16 * GB, 100 * GB, machines=2) if f.fits}
    assert one < two and "r1-distill-qwen-14b-6bit" in two - one
    big = {f.entry.name for f in recommend(512 * GB, 1000 * GB, machines=2) if f.fits}
    assert "r1-4bit" in big
    no = next(f for f in recommend(16 * GB, 100 * GB) if f.entry.name == "r1-distill-llama-70b-4bit")
    assert not no.fits and "only 12.0 GB usable" in no.why()


def test_cli_recommend_json_and_text(capsys):
    from workbench.cli import main

    assert main(["models", "recommend", "--memory", "128", "--disk", "200", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["memory"] == 128 * GB and out["fits"] and all(r["fits"] for r in out["fits"])
    assert all(r["name"] != "r1-4bit" for r in out["fits"])
    assert main(["models", "recommend", "--memory", "16", "--disk", "30"]) == 0
    text = capsys.readouterr().out
    assert "Best you can run:" in text and "Two machines like this together" in text and "workbench cluster" in text
    assert main(["models", "catalog"]) == 0
    assert "r1-distill-llama-70b-8bit" in capsys.readouterr().out


def test_the_fit_counts_the_kv_cache_at_the_chosen_bits_and_context(capsys):
    from workbench.cli import main
    from workbench.models.catalog import find_entry
    from workbench.models.recommend import fit

    qwen32 = find_entry("r1-distill-qwen-32b-4bit")
    fp16 = 64 * 8 * 128 * 2 * 2 * 32768  # layers x kv heads x head dim x K,V x 2 bytes x tokens
    assert qwen32.kv_cache_bytes() == fp16
    assert qwen32.kv_cache_bytes(32768, 8) == int(fp16 * (1 + 4 / 64) / 2)  # a byte and a share of fp16 scale+bias
    assert qwen32.kv_cache_bytes(32768, 4) == int(fp16 * (0.5 + 4 / 64) / 2)
    assert qwen32.kv_cache_bytes(8192) == fp16 // 4
    at_fp16, at_4 = fit(qwen32, 32 * GB, 500 * GB), fit(qwen32, 32 * GB, 500 * GB, kv_bits=4)
    assert not at_fp16.fits and at_4.fits and "KV cache at 4 bits" in at_4.why()
    assert fit(qwen32, 32 * GB, 500 * GB, context=8192).fits and "at 8k context" in fit(qwen32, 32 * GB, 500 * GB, context=8192).why()

    assert main(["models", "recommend", "--memory", "32", "--disk", "500", "--json"]) == 0
    plain = {r["name"] for r in json.loads(capsys.readouterr().out)["fits"]}
    assert main(["models", "recommend", "--memory", "32", "--disk", "500", "--json", "--kv-bits", "4"]) == 0
    quantized = json.loads(capsys.readouterr().out)
    assert quantized["kv_bits"] == 4 and "r1-distill-qwen-32b-4bit" in {r["name"] for r in quantized["fits"]} - plain


def test_catalog_pairs_drafts_that_share_the_tokenizer():
    from workbench.models.catalog import find_entry, load_catalog, profile_toml

    by_name = {e.name: e for e in load_catalog()}
    for target in ("r1-distill-qwen-7b-4bit", "r1-distill-qwen-14b-8bit", "r1-distill-qwen-32b-6bit"):
        assert by_name[target].draft == "r1-distill-qwen-1.5b" + target[target.rindex("-"):]
    assert by_name["r1-distill-llama-70b-4bit"].draft == "r1-distill-llama-8b-4bit"
    for e in by_name.values():  # a draft is a smaller catalog model of the same architecture
        if e.draft:
            assert by_name[e.draft].architecture == e.architecture and by_name[e.draft].params_b < e.params_b
    assert '# draft = "r1-distill-qwen-1.5b-4bit"' in profile_toml(find_entry("r1-distill-qwen-7b-4bit"))


def test_models_lists_report_cards_and_verify(tiny_model, workbench_home, capsys):
    from workbench.cli import main
    from workbench.models import identity
    from workbench.models.manifest import hashed_records, write_manifest

    folder = workbench_home / "models" / "mine"
    shutil.copytree(tiny_model, folder)
    (folder / "evals").mkdir()
    card = {"suite": {"name": "arithmetic"}, "accuracy": 0.5, "n": 20, "stale": False}  # as `workbench eval` writes
    (folder / "evals" / "arithmetic-20261123-080000-aaaaaa.json").write_text(json.dumps(card))
    (folder / "evals" / "arithmetic-20261123-090000-bbbbbb.json").write_text(json.dumps({**card, "accuracy": 0.85}))
    (folder / "evals" / "broken.json").write_text("{not json")
    shipped = workbench_home / "evals" / "r1-nano"  # read-only models keep their cards under WORKBENCH_HOME
    shipped.mkdir(parents=True)
    (shipped / "gsm8k-20261123-090000-cccccc.json").write_text(json.dumps({**card, "suite": {"name": "gsm8k"}, "stale": True}))
    assert main(["models"]) == 0
    out = capsys.readouterr().out.splitlines()
    row = next(line for line in out if " mine " in line)
    assert "arithmetic 85% (n=20)" in row and "50%" not in row and "user" in row  # the latest card per suite
    assert "gsm8k 50% (n=20) stale" in next(line for line in out if " r1-nano " in line)
    assert main(["models", "--json"]) == 0
    mine = next(m for m in json.loads(capsys.readouterr().out) if m["name"] == "mine")
    assert [c["suite"] for c in mine["report_cards"]] == ["arithmetic"]

    assert main(["models", "verify", "mine"]) == 2  # no manifest: one line
    assert "no manifest.json" in capsys.readouterr().err
    write_manifest(folder, {"files": hashed_records(folder, [p.name for p in identity.model_files(folder)])})
    assert main(["models", "verify", "mine"]) == 0
    data = bytearray((folder / "model.safetensors").read_bytes())
    data[-1] ^= 1
    (folder / "model.safetensors").write_bytes(bytes(data))
    assert main(["models", "verify", "mine"]) == 1
    assert "CHANGED" in capsys.readouterr().out


def test_downloads_go_where_huggingface_hub_puts_them(monkeypatch, tmp_path):
    from workbench.models.recommend import download_dir

    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert download_dir() == tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    assert download_dir() == tmp_path / "cache"


def test_recommend_with_a_draft_counts_its_weights_and_kv_cache(capsys):
    from workbench.cli import main
    from workbench.models.catalog import find_entry
    from workbench.models.recommend import fit, recommend

    qwen14, draft = find_entry("r1-distill-qwen-14b-4bit"), find_entry("r1-distill-qwen-1.5b-4bit")
    alone, drafted = fit(qwen14, 24 * GB, 500 * GB), fit(qwen14, 24 * GB, 500 * GB, draft=draft)
    assert drafted.memory_needed == alone.memory_needed + draft.weights_bytes + draft.kv_cache_bytes()
    short = fit(qwen14, 24 * GB, 500 * GB, context=8192, kv_bits=4, draft=draft)
    assert short.memory_needed == (qwen14.weights_bytes + qwen14.kv_cache_bytes(8192, 4) + draft.weights_bytes
                                   + draft.kv_cache_bytes(8192, 4) + 1 * GB)
    assert "draft r1-distill-qwen-1.5b-4bit" in drafted.why() and "draft" not in alone.why()
    # a machine between the two: fits without the draft, not with it
    between = int((alone.memory_needed + drafted.memory_needed) / 2 / 0.75)
    plain = {f.entry.name: f for f in recommend(between, 500 * GB)}
    with_drafts = {f.entry.name: f for f in recommend(between, 500 * GB, draft=True)}
    assert plain["r1-distill-qwen-14b-4bit"].fits and not with_drafts["r1-distill-qwen-14b-4bit"].fits
    assert "no draft" in with_drafts["r1-distill-qwen-1.5b-4bit"].why()  # nothing drafts for the smallest
    # a cluster loads the whole draft on every machine (cluster serve --draft): each machine counts it
    two = {f.entry.name: f for f in recommend(between, 500 * GB, machines=2, draft=True)}
    assert two["r1-distill-qwen-14b-4bit"].memory_needed == (fit(qwen14, between, 500 * GB, machines=2).memory_needed
                                                             + draft.weights_bytes + draft.kv_cache_bytes())
    assert "draft r1-distill-qwen-1.5b-4bit" in two["r1-distill-qwen-14b-4bit"].why()

    assert main(["models", "recommend", "--memory", str(between / GB), "--disk", "500", "--json"]) == 0
    assert "r1-distill-qwen-14b-4bit" in {r["name"] for r in json.loads(capsys.readouterr().out)["fits"]}
    assert main(["models", "recommend", "--memory", str(between / GB), "--disk", "500", "--json", "--draft"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["draft"] is True and "r1-distill-qwen-14b-4bit" not in {r["name"] for r in out["fits"]}
    assert main(["models", "recommend", "--memory", "64", "--disk", "500", "--draft"]) == 0
    assert "+ draft r1-distill-qwen-1.5b" in capsys.readouterr().out


@pytest.mark.parametrize("config", [{"text_config": "x"}, {"text_config": [1]}, {"num_attention_heads": 0,
                                    "hidden_size": 64, "num_hidden_layers": 2}, {"num_hidden_layers": "2"}, [], "x"])
def test_a_config_of_any_shape_gives_a_kv_size_or_none(config):
    """config.json is model input: `cluster serve` sizes its kept caches from it, and must not crash on it."""
    from workbench.models.catalog import config_kv_cache_bytes

    assert config_kv_cache_bytes(config) is None


def test_the_kv_size_of_a_config_reads_a_multimodal_models_text_config():
    from workbench.models.catalog import config_kv_cache_bytes, kv_cache_bytes

    text = {"num_attention_heads": 8, "num_key_value_heads": 2, "hidden_size": 512, "num_hidden_layers": 4}
    assert config_kv_cache_bytes({"text_config": text}, context=10) == kv_cache_bytes(4, 2, 64, 10)
