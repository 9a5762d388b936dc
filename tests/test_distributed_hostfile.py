"""`cluster init`'s host checks with a fake ssh, the hostfile format mlx.launch reads, layer splits,
the launch command and the serve guards. Fast: no MLX, no ranks."""

from __future__ import annotations

import json
import subprocess
import sys
from argparse import Namespace

import pytest

from workbench.commands import cluster
from workbench.distributed.hostfile import (
    PROBE, Host, Hostfile, check_hosts, local_versions, memory_problems, parse_split, split_by_memory,
)
from workbench.errors import UserError

GB = 1e9


def fake_ssh(answers: dict):
    """A Runner: host -> (returncode, probe dict or stdout text, stderr). Records the commands."""
    calls = []

    def run(host, argv):
        calls.append((host, argv))
        code, out, err = answers[host]
        if isinstance(out, dict):
            out = json.dumps(out)
        return subprocess.CompletedProcess(argv, code, out + "\n", err)

    run.calls = calls
    return run


def probe(free_gb=64.0, model=True, **versions):
    return {**local_versions(), "free": free_gb * GB, "model": model, **versions}


def init_args(tmp_path, model, hosts="mac-a,mac-b", **kw):
    return Namespace(hosts=hosts, backend="ring", model=str(model), ips="10.0.0.1,10.0.0.2", python="/venv/bin/python",
                     output=str(tmp_path / "hostfile.json"), **kw)


def test_init_writes_a_hostfile_mlx_launch_reads(tiny_model, tmp_path, capsys):
    from mlx._distributed_utils.common import Hostfile as MLXHostfile

    runner = fake_ssh({"mac-a": (0, probe(64), ""), "mac-b": (0, probe(32), "")})
    assert cluster.init(init_args(tmp_path, tiny_model), runner) == 0
    assert [h for h, _ in runner.calls] == ["mac-a", "mac-b"]
    assert runner.calls[0][1][:2] == ["/venv/bin/python", "-c"] and runner.calls[0][1][-1] == str(tiny_model)
    parsed = MLXHostfile.from_file(tmp_path / "hostfile.json")  # mlx's own parser
    assert [(h.ssh_hostname, h.ips) for h in parsed.hosts] == [("mac-a", ["10.0.0.1"]), ("mac-b", ["10.0.0.2"])]
    assert parsed.backend == "ring"
    assert "mac-a 1 layers, mac-b 1 layers" in capsys.readouterr().out  # two layers, one each


def test_init_reports_one_line_per_problem(tiny_model, tmp_path, capsys):
    runner = fake_ssh({
        "mac-a": (0, probe(), ""),
        "mac-b": (255, "", "ssh: connect to host mac-b port 22: Connection refused"),
        "mac-c": (0, probe(model=False, mlx="0.29.0"), ""),
        "mac-d": (1, "", "Traceback...\nModuleNotFoundError: No module named 'json'"),
    })
    args = init_args(tmp_path, tiny_model, hosts="mac-a,mac-b,mac-c,mac-d")
    args.ips = None
    with pytest.MonkeyPatch.context() as m:
        m.setattr("workbench.distributed.hostfile.resolve_ip", lambda host: "10.0.0.9")
        assert cluster.init(args, runner) == 2
    err = capsys.readouterr().err.splitlines()
    assert any("mac-b: ssh failed (ssh: connect to host mac-b port 22: Connection refused)" in line for line in err)
    assert any("mac-c: mlx 0.29.0 there" in line for line in err)
    assert any(f"mac-c: no model at {tiny_model}; copy it: rsync -a" in line for line in err)
    assert any("mac-d: /venv/bin/python cannot run the workbench probe (ModuleNotFoundError" in line for line in err)
    assert any("2 layers cannot be split over 4 hosts" in line for line in err)
    assert not any(line.startswith("workbench: error: mac-a") for line in err)
    assert not (tmp_path / "hostfile.json").exists()  # nothing written while problems remain


def test_shards_that_do_not_fit_are_named():
    split, problems = memory_problems(["big", "small"], [100 * GB, 10 * GB], n_layers=64, total_bytes=120 * GB)
    assert split == [58, 6]
    assert problems == ["big: its 58 of 64 layers need ~108.8 GB, but only 100.0 GB are free",
                        "small: its 6 of 64 layers need ~11.2 GB, but only 10.0 GB are free"]
    assert memory_problems(["big", "small"], [100 * GB, 10 * GB], 64, 80 * GB)[1] == []  # 80 GB fits by memory
    _, problems = memory_problems(["big", "small"], [100 * GB, 10 * GB], 64, 60 * GB, split=[32, 32])
    assert problems == ["small: its 32 of 64 layers need ~30.0 GB, but only 10.0 GB are free"]


def test_real_probe_runs_on_this_machine(tiny_model):
    probes, problems = check_hosts(["127.0.0.1"], tiny_model, sys.executable)
    assert problems == [] and probes[0]["model"] is True and probes[0]["free"] > 0
    assert "import mlx" not in PROBE  # the probe stays cheap


@pytest.mark.parametrize("n, free", [(24, [64, 32]), (61, [192, 192]), (28, [16, 48, 8]), (3, [1, 1000, 1]), (5, [0, 0])])
def test_split_by_memory_covers_every_layer(n, free):
    split = split_by_memory(n, [f * GB for f in free])
    assert sum(split) == n and min(split) >= 1 and len(split) == len(free)
    richest, poorest = free.index(max(free)), free.index(min(free))
    assert split[richest] >= split[poorest]


def test_split_argument():
    assert parse_split("10,14", 2) == [10, 14]
    for bad in ("10", "10,x", "0,24"):
        with pytest.raises(UserError, match="--split"):
            parse_split(bad, 2)


def test_hostfile_round_trip_and_bad_files(tmp_path):
    hostfile = Hostfile([Host("a", ["10.0.0.1"]), Host("b", ["10.0.0.2"])], "jaccl", ["MLX_METAL_FAST_SYNCH=1"])
    hostfile.write(tmp_path / "h.json")
    assert Hostfile.read(tmp_path / "h.json") == hostfile
    (tmp_path / "bad.json").write_text('{"hosts": [{"name": "a"}]}')
    with pytest.raises(UserError, match="bad.json: not an mlx.launch hostfile"):
        Hostfile.read(tmp_path / "bad.json")
    with pytest.raises(UserError, match="no such hostfile"):
        Hostfile.read(tmp_path / "missing.json")


def serve_args(**kw):
    base = dict(model=None, hostfile=None, local_ranks=2, mode="pipeline", split=None, host="127.0.0.1", port=8123,
                token=None, deadline=20.0, starting_port=32323, python="/venv/bin/python")
    return Namespace(**{**base, **kw})


def test_launch_command_for_local_ranks_and_a_hostfile(tmp_path):
    rank = cluster.launch_command(serve_args(split="1,1", mode="tensor"), tmp_path / "m")
    assert rank[:3] == ["/venv/bin/python", "-m", "workbench.distributed.rank"]  # started directly, not by mlx.launch
    assert rank[rank.index("--hosts") + 1] == "127.0.0.1,127.0.0.1"
    assert ["--mode", "tensor"] == rank[rank.index("--mode"):rank.index("--mode") + 2] and "--split" in rank
    hostfile = Hostfile([Host("mac-a", ["10.0.0.1"]), Host("mac-b", ["10.0.0.2"])], "mpi")
    remote = cluster.launch_command(serve_args(local_ranks=None, hostfile=str(tmp_path / "h.json")), tmp_path / "m",
                                    hostfile, token_file=tmp_path / "t")
    assert "--hostfile" in remote and remote[remote.index("--backend") + 1] == "mpi"
    assert "mac-a,mac-b" in remote and str(tmp_path / "t") in remote
    assert not any("secret" in part for part in remote)


def test_serve_refuses_a_public_address_without_a_token():
    with pytest.raises(UserError, match="--token"):
        cluster.serve(serve_args(host="0.0.0.0"))
    with pytest.raises(UserError, match="--local-ranks 1: need at least 2"):  # MLX's ring refuses one rank
        cluster.serve(serve_args(local_ranks=1))


def test_rank_descriptions_for_status():
    from workbench.distributed.shard import Shard, summary

    ranks = [Shard(0, "mac-a", "pipeline", 0, 40, 64, memory_gb=20.5, free_gb=100.0).to_dict(),
             Shard(1, "mac-b", "pipeline", 40, 64, 64, memory_gb=12.25, peak_gb=13.0, free_gb=60.0).to_dict()]
    assert Shard.from_dict(ranks[1]).describe() == (
        "rank 1 (mac-b): layers 40-63 of 64 · 12.25 GB loaded · peak 13.00 GB · 60.0 GB were free")
    assert summary(ranks) == "2 ranks · r0 layers 0-39, 20.5 GB · r1 layers 40-63, 13.0 GB"
    tensor = Shard(1, "mac-b", "tensor", 0, 64, 64, ways=2, memory_gb=9.0).to_dict()
    assert "1/2 of every layer's heads and MLP (64 layers)" in Shard.from_dict(tensor).describe()
    assert summary([tensor]) == "1 ranks · r1 1/2 of each layer, 9.0 GB"
