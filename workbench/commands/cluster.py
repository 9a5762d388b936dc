"""`workbench cluster init|serve|status`: one model over several machines with `mlx.distributed`.

    workbench cluster init --hosts mac-a.local,mac-b.local --model M     # checks hosts, writes the hostfile
    workbench cluster serve --model M --hostfile H [--pipeline|--tensor]  # mlx.launch; rank 0 serves HTTP
    workbench cluster serve --model M --local-ranks 2                     # two ranks on this machine
    workbench cluster status [--endpoint URL]                              # layers and memory per rank
"""

from __future__ import annotations

import os
import sys

from workbench.commands.arguments import DEFAULT_PORT, port_number, add_decoding_arguments, add_prompt_cache_argument, decoding_from_args


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    init = sub.add_parser("init", help="check the hosts and write an mlx.launch hostfile")
    init.add_argument("--hosts", required=True, help="comma-separated ssh host names, rank 0 first")
    init.add_argument("--backend", choices=("ring", "mpi", "jaccl"), default="ring")
    init.add_argument("--model", "-m", default=None, help="the model every host must have (same path)")
    init.add_argument("--ips", default=None, help="ring addresses per host (default: resolve the names)")
    init.add_argument("--python", default=sys.executable, help="the workbench's Python on every host (same path)")
    init.add_argument("--output", "-o", default=None, help="hostfile to write (default: WORKBENCH_HOME/cluster/hostfile.json)")

    serve = sub.add_parser("serve", help="start the sharded model on all ranks; rank 0 serves an OpenAI API")
    serve.add_argument("--model", "-m", default=None, help="model folder or name (the same path on every host)")
    where = serve.add_mutually_exclusive_group()
    where.add_argument("--hostfile", default=None, help="from `cluster init` (default: the one it wrote)")
    where.add_argument("--local-ranks", type=int, default=None, help="run N ranks on this machine over loopback")
    mode = serve.add_mutually_exclusive_group()
    mode.add_argument("--pipeline", dest="mode", action="store_const", const="pipeline",
                      help="each rank holds a slice of the layers (default; unequal machines)")
    mode.add_argument("--tensor", dest="mode", action="store_const", const="tensor",
                      help="each rank holds a slice of every layer (fast links)")
    serve.add_argument("--split", default=None, help="pipeline layer counts per rank, e.g. 10,18 (default: by free memory)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind on rank 0 (others need --token)")
    serve.add_argument("--port", type=port_number, default=DEFAULT_PORT)
    serve.add_argument("--token", default=os.environ.get("WORKBENCH_TOKEN"),
                       help="bearer token required on every request (default: $WORKBENCH_TOKEN)")
    serve.add_argument("--deadline", type=float, default=20.0, help="seconds before a silent rank counts as lost")
    serve.add_argument("--starting-port", type=int, default=32323, help="first port of the ring backend")
    serve.add_argument("--python", default=sys.executable, help="the workbench's Python on every host")
    add_prompt_cache_argument(serve)
    add_decoding_arguments(serve)  # every rank alike; a draft loads whole on each, auto keeps rank 0's verdict
    serve.set_defaults(mode="pipeline")

    status = sub.add_parser("status", help="which layers each rank holds and its memory")
    status.add_argument("--endpoint", default=f"http://127.0.0.1:{DEFAULT_PORT}", help="the cluster's URL")
    status.add_argument("--token", default=os.environ.get("WORKBENCH_TOKEN"))


def main(args) -> int:
    return {"init": init, "serve": serve, "status": status}[args.action](args)


def default_hostfile():
    from workbench.paths import workbench_home

    return workbench_home() / "cluster" / "hostfile.json"


def init(args, runner=None) -> int:
    from workbench.distributed.hostfile import (
        Host, Hostfile, check_hosts, memory_problems, model_bytes, resolve_ip, ssh_runner,
    )
    from workbench.engine.loader import check_model_folder
    from workbench.errors import UserError
    from workbench.models.local import resolve_model

    names = [h.strip() for h in args.hosts.split(",") if h.strip()]
    if len(names) < 2:
        raise UserError("--hosts: name at least two hosts, rank 0 first")
    model = resolve_model(args.model)
    config = check_model_folder(model)  # one-line errors for a broken folder, before any ssh
    probes, problems = check_hosts(names, model, args.python, runner or ssh_runner)
    split, memory = memory_problems(names, [p.get("free") for p in probes], int(config.get("num_hidden_layers", 1)),
                                    model_bytes(model))
    problems += memory
    ips = args.ips.split(",") if args.ips else []
    if ips and len(ips) != len(names):
        raise UserError(f"--ips: {len(ips)} addresses for {len(names)} hosts")
    hosts = []
    for i, name in enumerate(names):
        try:
            hosts.append(Host(name, [ips[i] if ips else resolve_ip(name)]))
        except UserError as e:
            problems.append(str(e))
    for name, probe in zip(names, probes):
        if probe.get("free"):
            print(f"{name}: mlx {probe.get('mlx')}, mlx-lm {probe.get('mlx_lm')}, {probe['free'] / 1e9:.1f} GB free")
    if problems:
        for line in problems:
            print(f"workbench: error: {line}", file=sys.stderr)
        return 2
    if args.backend == "jaccl":
        print("note: jaccl needs the RDMA devices per host pair; run `mlx.distributed_config --backend jaccl` "
              "on the Thunderbolt-connected hosts to fill them in", file=sys.stderr)
    path = args.output or default_hostfile()
    Hostfile(hosts, args.backend).write(path)
    print(f"wrote {path}: {len(hosts)} hosts, {args.backend} backend; pipeline split by free memory: "
          + ", ".join(f"{n} {c} layers" for n, c in zip(names, split)))
    return 0


def launcher(args, hostfile=None) -> tuple[list[str], list[str]]:
    """(prefix of the rank command, host names by rank): `mlx.launch ... --` for a hostfile's hosts; none for
    `--local-ranks`, which `run_ranks` starts itself (see workbench/distributed/local.py for why)."""
    from pathlib import Path

    if hostfile is None:
        return [], ["127.0.0.1"] * args.local_ranks
    launch = Path(sys.executable).with_name("mlx.launch")
    return [str(launch) if launch.exists() else "mlx.launch", "--starting-port", str(args.starting_port),
            "--hostfile", str(args.hostfile or default_hostfile()), "--backend", hostfile.backend, "--"], hostfile.names


def check_local_ranks(args) -> None:
    from workbench.errors import UserError

    if args.local_ranks is not None and args.local_ranks < 2:  # MLX's ring needs two; one rank is the plain command
        raise UserError(f"--local-ranks {args.local_ranks}: need at least 2")


def run_ranks(args, command: list[str]) -> int:
    """Run `command` (with `launcher`'s prefix) to the end: local ranks directly, a hostfile's through mlx.launch."""
    import subprocess

    from workbench.distributed import local

    if args.local_ranks is not None:
        return local.run_ranks(command, args.local_ranks, args.starting_port)
    try:
        return subprocess.run(command).returncode
    except KeyboardInterrupt:
        return 130


def launch_command(args, model, hostfile=None, token_file=None) -> list[str]:
    """The command line of every rank (behind `mlx.launch ... --` for a hostfile)."""
    command, names = launcher(args, hostfile)
    command += [args.python, "-m", "workbench.distributed.rank", "--model", str(model), "--mode", args.mode,
                "--host", args.host, "--port", str(args.port), "--deadline", str(args.deadline),
                "--hosts", ",".join(names)]
    if hostfile is not None:
        command += ["--backend", hostfile.backend]
    if args.split:
        command += ["--split", args.split]
    for flag, value in (("--kv-bits", getattr(args, "kv_bits", None)), ("--kv-start", getattr(args, "kv_start", None)),
                        ("--draft", getattr(args, "draft", None)), ("--draft-tokens", getattr(args, "draft_tokens", None)),
                        ("--draft-mode", getattr(args, "draft_mode", None)), ("--context", getattr(args, "context", None))):
        if value is not None:
            command += [flag, str(value)]
    if getattr(args, "prompt_cache_gb", None) is not None:  # every rank alike, whatever its host's environment
        command += ["--prompt-cache-gb", str(args.prompt_cache_gb)]
    if token_file:
        command += ["--token-file", str(token_file)]
    return command


def serve(args) -> int:
    import tempfile
    from pathlib import Path

    from workbench.distributed.hostfile import Hostfile
    from workbench.distributed.server import LOOPBACK
    from workbench.engine.thread import prompt_cache_setting
    from workbench.errors import UserError
    from workbench.models.local import resolve_model

    if args.host not in LOOPBACK and not args.token:
        raise UserError(f"--host {args.host}: binding beyond loopback needs --token (or $WORKBENCH_TOKEN)")
    check_local_ranks(args)
    decoding = decoding_from_args(args)
    args.prompt_cache_gb = prompt_cache_setting(given=args.prompt_cache_gb)
    model = resolve_model(args.model)
    if decoding.draft is not None:  # the ranks get a folder (the same path on every host), or '' for none
        args.draft = decoding.draft and str(resolve_model(decoding.draft))
    hostfile = None
    if args.local_ranks is None:
        hostfile = Hostfile.read(Path(args.hostfile or default_hostfile()))
    with tempfile.TemporaryDirectory(prefix="workbench-cluster-") as tmp:
        token_file = None
        if args.token:  # a file, not argv: command lines are visible to every user of the machine
            token_file = Path(tmp) / "token"
            token_file.touch(mode=0o600)
            token_file.write_text(args.token)
        return run_ranks(args, launch_command(args, model, hostfile, token_file))


def status(args) -> int:
    from workbench.engine.remote import RemoteEngine

    engine = RemoteEngine(args.endpoint, token=args.token)
    cluster = engine.cluster()
    print(f"{cluster.get('model', '?')} at {args.endpoint}")
    from workbench.distributed.shard import Shard

    for rank in cluster.get("ranks", []):
        print("  " + Shard.from_dict(rank).describe())
    return 0
