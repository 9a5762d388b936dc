"""Two "hosts" on this machine for the distributed tests: network namespaces joined by veth, made by
`scripts/netns_hosts.sh` (rank 0 on 10.77.0.1, rank 1 on 10.77.0.2). mlx.launch would need ssh to
reach another host, so each rank is started here with `ip netns exec` and the environment mlx.launch
would give it (MLX_RANK, MLX_HOSTFILE). Tests skip, saying why, when namespaces cannot be made."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import ROOT

ADDRESSES = ("10.77.0.1", "10.77.0.2")  # fixed by the script
SCRIPT = ROOT / "scripts" / "netns_hosts.sh"

# Before the (expensive) model fixtures are built.
needs_namespaces = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip"),
                                      reason="needs root and iproute2 to make network namespaces")


class TwoHosts:
    def __init__(self, prefix: str):
        self.namespaces = (f"{prefix}a", f"{prefix}b")
        self.procs: list[subprocess.Popen] = []

    def command(self, rank: int, *argv: str) -> list[str]:
        """`argv` run on host `rank` (0 is a, 1 is b)."""
        return ["ip", "netns", "exec", self.namespaces[rank], *argv]

    def ring_hostfile(self, path: Path, port: int = 41500) -> Path:
        """What mlx.launch hands each rank for the ring backend: one address per rank."""
        path.write_text(json.dumps([[f"{ip}:{port}"] for ip in ADDRESSES]))
        return path

    def start(self, rank: int, argv: list[str], env: dict, hostfile: Path, **popen) -> subprocess.Popen:
        """`argv` as rank `rank` on its host; killed at teardown if still running."""
        proc = subprocess.Popen(self.command(rank, *argv), env={**env, "MLX_RANK": str(rank), "MLX_HOSTFILE": str(hostfile)},
                                **popen)
        self.procs.append(proc)
        return proc

    def start_ranks(self, argv: list[str], env: dict, hostfile: Path, **popen) -> list[subprocess.Popen]:
        return [self.start(rank, argv, env, hostfile, **popen) for rank in (0, 1)]

    def outputs(self, procs: list[subprocess.Popen], timeout: float = 180) -> list[str]:
        """Each rank's output once all have ended (started with `stdout=PIPE, text=True`); fails the test on a hang."""
        try:
            return [p.communicate(timeout=timeout)[0] for p in procs]
        except subprocess.TimeoutExpired:
            pytest.fail(f"ranks in namespaces did not finish within {timeout:.0f} s")

    def run(self, rank: int, argv: list[str], env: dict, timeout: float) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(rank, *argv), capture_output=True, text=True, timeout=timeout, env=env)


@contextmanager
def two_hosts():
    """Namespaces up (a fresh prefix each time), always down at the end, after killing what runs in them."""
    prefix = f"wb{secrets.token_hex(3)}"  # interface names stay under 15 characters
    setup = subprocess.run(["bash", str(SCRIPT), "up", prefix], capture_output=True, text=True, timeout=30)
    hosts = TwoHosts(prefix)
    try:
        if setup.returncode != 0:
            why = (setup.stderr.strip().splitlines() or [f"exit code {setup.returncode}"])[-1]
            pytest.skip(f"cannot make network namespaces here ({SCRIPT.name} up: {why})")
        yield hosts
    finally:
        for p in hosts.procs:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=30)
        subprocess.run(["bash", str(SCRIPT), "down", prefix], timeout=30)
