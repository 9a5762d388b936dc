"""The `mlx.launch` hostfile and the per-host checks `workbench cluster init` makes. No MLX.

The hostfile is the JSON `mlx.distributed_config` writes and `mlx.launch --hostfile` reads:
    {"backend": "ring", "envs": [], "hosts": [{"ssh": "mac-a.local", "ips": ["10.0.0.1"], "rdma": []}, ...]}
Host checks run a small probe over ssh; `Runner` is the seam tests replace with a fake.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from workbench.errors import UserError

BACKENDS = ("ring", "mpi", "jaccl")
LOCAL = ("127.0.0.1", "localhost")
MEMORY_MARGIN = 0.9  # a shard may use at most this share of a host's free memory (KV cache, the OS)


@dataclass
class Host:
    ssh: str
    ips: list[str] = field(default_factory=list)
    rdma: list = field(default_factory=list)


@dataclass
class Hostfile:
    hosts: list[Host]
    backend: str = "ring"
    envs: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"backend": self.backend, "envs": self.envs,
                "hosts": [{"ssh": h.ssh, "ips": h.ips, "rdma": h.rdma} for h in self.hosts]}

    @classmethod
    def from_dict(cls, d) -> "Hostfile":
        hosts = d.get("hosts") if isinstance(d, dict) else d  # mlx also accepts a bare list of hosts
        if not isinstance(hosts, list) or not hosts or not all(isinstance(h, dict) and isinstance(h.get("ssh"), str) for h in hosts):
            raise ValueError('expected {"hosts": [{"ssh": ..., "ips": [...]}, ...]}')
        backend = d.get("backend", "ring") if isinstance(d, dict) else "ring"
        envs = d.get("envs", []) if isinstance(d, dict) else []
        return cls([Host(h["ssh"], list(h.get("ips", [])), list(h.get("rdma", []))) for h in hosts], backend or "ring", envs)

    @classmethod
    def read(cls, path: Path) -> "Hostfile":
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except FileNotFoundError:
            raise UserError(f"{path}: no such hostfile (make one with `workbench cluster init --hosts ...`)") from None
        except ValueError as e:
            raise UserError(f"{path}: not an mlx.launch hostfile ({str(e).splitlines()[0]})") from None

    def write(self, path: Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")

    @property
    def names(self) -> list[str]:
        return [h.ssh for h in self.hosts]


def free_memory_bytes() -> int:
    """Memory available to a new process on this machine."""
    if platform.system() == "Darwin":
        out = subprocess.run(["vm_stat"], capture_output=True, text=True, timeout=5).stdout
        page = int(out.split("page size of")[1].split()[0]) if "page size of" in out else 16384
        pages = 0
        for line in out.splitlines():
            name, _, value = line.partition(":")
            if name.strip() in ("Pages free", "Pages inactive", "Pages speculative", "Pages purgeable"):
                pages += int(value.strip().rstrip("."))
        return pages * page
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def split_by_memory(n_layers: int, free: list[float]) -> list[int]:
    """Layer counts per rank proportional to free memory, each rank at least one (largest remainder)."""
    if n_layers < len(free):
        raise ValueError(f"{n_layers} layers cannot be split over {len(free)} ranks")
    weights = [max(f, 0.0) for f in free]
    if sum(weights) <= 0:
        weights = [1.0] * len(free)
    shares = [w / sum(weights) * n_layers for w in weights]
    counts = [max(1, int(s)) for s in shares]
    while sum(counts) > n_layers:  # the max(1, ...) floors can overshoot: take from the largest
        counts[counts.index(max(counts))] -= 1
    order = sorted(range(len(free)), key=lambda i: shares[i] - int(shares[i]), reverse=True)
    i = 0
    while sum(counts) < n_layers:
        counts[order[i % len(order)]] += 1
        i += 1
    return counts


def parse_split(text: str, n_ranks: int) -> list[int]:
    """`--split 10,14`: layer counts per rank, rank 0 first."""
    try:
        counts = [int(x) for x in text.split(",")]
    except ValueError:
        raise UserError(f"--split {text!r}: expected layer counts like 10,14") from None
    if len(counts) != n_ranks or min(counts) < 1:
        raise UserError(f"--split {text!r}: need {n_ranks} positive layer counts, one per rank")
    return counts


# ---- per-host checks ---------------------------------------------------------------------------

# Runs on each host with the workbench's Python; prints one JSON line. Stdlib only, no MLX.
PROBE = """
import json, sys
from importlib.metadata import version
from pathlib import Path
def v(name):
    try:
        return version(name)
    except Exception:
        return None
out = {"workbench": v("reasoning-workbench"), "mlx": v("mlx"), "mlx_lm": v("mlx-lm")}
try:
    from workbench.distributed.hostfile import free_memory_bytes
    out["free"] = free_memory_bytes()
except Exception:
    out["free"] = None
m = Path(sys.argv[1])
out["model"] = (m / "config.json").is_file() and any(m.glob("*.safetensors"))
print(json.dumps(out))
"""

Runner = Callable[[str, list], subprocess.CompletedProcess]  # (host, argv) -> finished process


def ssh_runner(host: str, argv: list, timeout: float = 30) -> subprocess.CompletedProcess:
    """Run argv on host: directly for this machine, else over ssh without prompts."""
    if host in LOCAL:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    return subprocess.run(["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", host, shlex.join(argv)],
                          capture_output=True, text=True, timeout=timeout)


def local_versions() -> dict:
    from importlib.metadata import version

    return {name: version(dist) for name, dist in (("workbench", "reasoning-workbench"), ("mlx", "mlx"), ("mlx_lm", "mlx-lm"))}


def model_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).glob("*.safetensors"))


def check_hosts(hosts: list[str], model: Path, python: str, runner: Runner = ssh_runner,
                versions: dict | None = None) -> tuple[list[dict], list[str]]:
    """Probe every host; returns (probe results, one problem line per failed check)."""
    versions = versions or local_versions()
    probes, problems = [], []
    for host in hosts:
        try:
            done = runner(host, [python, "-c", PROBE, str(model)])
        except subprocess.TimeoutExpired:
            problems.append(f"{host}: no answer over ssh (timed out)")
            probes.append({})
            continue
        except OSError as e:
            problems.append(f"{host}: cannot run ssh ({e.strerror or e})")
            probes.append({})
            continue
        lines = [line for line in (done.stderr or "").strip().splitlines() if line.strip()]
        if done.returncode == 255:
            problems.append(f"{host}: ssh failed ({lines[-1] if lines else 'unreachable'}); set up key login first")
            probes.append({})
            continue
        try:
            probe = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else None
        except (ValueError, IndexError):
            probe = None
        if not isinstance(probe, dict):
            problems.append(f"{host}: {python} cannot run the workbench probe ({lines[-1] if lines else 'no output'}); "
                            "install the workbench there at the same path")
            probes.append({})
            continue
        probes.append(probe)
        for name, want in versions.items():
            if probe.get(name) != want:
                problems.append(f"{host}: {name} {probe.get(name) or 'missing'} there, {want} here; install the same version")
        if not probe.get("model"):
            problems.append(f"{host}: no model at {model}; copy it: rsync -a {model}/ {host}:{model}/")
    return probes, problems


def memory_problems(hosts: list[str], free: list[float | None], n_layers: int, total_bytes: int,
                    split: list[int] | None = None) -> tuple[list[int], list[str]]:
    """The pipeline split (given, or by free memory) and the hosts whose shard would not fit."""
    if n_layers < len(hosts):
        return [], [f"the model's {n_layers} layers cannot be split over {len(hosts)} hosts; use fewer hosts"]
    known = [f if f else 0.0 for f in free]
    split = split or split_by_memory(n_layers, known)
    problems = []
    for host, f, layers in zip(hosts, free, split):
        need = total_bytes * layers / n_layers
        if f is not None and need > f * MEMORY_MARGIN:
            problems.append(f"{host}: its {layers} of {n_layers} layers need ~{need / 1e9:.1f} GB, "
                            f"but only {f / 1e9:.1f} GB are free")
    return split, problems


def resolve_ip(host: str) -> str:
    """The address the ring backend connects to (mlx.launch needs IPs, not names)."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        return socket.gethostbyname(host)
    except OSError:
        raise UserError(f"{host}: cannot resolve its address; pass --ips") from None
