"""Run untrusted Python in a separate, limited process.

Layers (each catches what the others miss; none is a full jail):
- a fresh interpreter (`python -I`) in a temporary working directory, with a scrubbed
  environment (PATH, HOME and TMPDIR only), stdin closed;
- rlimits: CPU seconds, address space, processes, file size (which also caps the output:
  stdout goes to a file), open files, no core dumps; wall-clock timeout in the parent;
- no network: `unshare -n` (Linux, when it works) and an audit hook that refuses sockets;
- when we run as root, the child drops to `nobody` (rlimits on processes only bind non-root);
- an audit hook (PEP 578: cannot be removed once installed) that refuses new processes, signals,
  ctypes, and writes or deletes outside the temporary directory, and reads of other processes'
  /proc entries (the parent's environment);
- its own process group, killed (with everything in it) when the run ends.
macOS has no `unshare` and does not enforce RLIMIT_AS: there the audit hook and the other
limits hold, and the memory limit does not.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass

# Modules the child imports before it drops privileges (a dropped child may not read the stdlib).
PRELOAD = ("typing", "math", "cmath", "collections", "itertools", "functools", "re", "string", "heapq",
           "bisect", "hashlib", "json", "random", "decimal", "fractions", "statistics", "operator",
           "copy", "datetime", "array", "numbers", "dataclasses", "enum", "textwrap", "unicodedata",
           "traceback", "io", "abc", "contextlib", "types", "struct", "time",
           # refused by the audit hook, preloaded so that refusal (not a missing file) is what stops them
           "os", "signal", "socket", "shutil", "subprocess", "ctypes", "pathlib", "tempfile", "threading", "encodings.idna")

CHILD = r'''
import json, os, sys
config = json.loads(sys.stdin.readline())
sys.stdin.close()
sys.stdin = open(os.devnull)
for name in config["preload"]:
    try:
        __import__(name)
    except ImportError:
        pass
import resource
for name, value in config["rlimits"].items():
    try:
        resource.setrlimit(getattr(resource, name), tuple(value))
    except (ValueError, OSError, AttributeError):
        pass
if config["drop_to"] is not None:
    os.setgroups([])
    os.setgid(config["drop_to"])
    os.setuid(config["drop_to"])
HOME = os.path.realpath(config["home"])
DENY = ("socket.", "subprocess.", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
        "os.forkpty", "os.kill", "os.killpg", "signal.pthread_kill", "ctypes.", "os.setuid", "os.setgid",
        "pty.", "os.startfile", "resource.setrlimit", "resource.prlimit", "sys.addaudithook", "mmap.")
PATHS = ("os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.link", "os.symlink",
         "os.truncate", "os.utime", "shutil.rmtree", "shutil.move", "shutil.copyfile", "os.chdir", "os.chroot")
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
def inside(path):
    try:
        path = os.fsdecode(path) if not isinstance(path, int) else None
    except TypeError:
        return False
    if path is None:
        return True  # a file descriptor we already hold
    real = os.path.realpath(os.path.join(HOME, path))
    return real == HOME or real.startswith(HOME + os.sep)
def own_proc(path):
    if isinstance(path, int):
        return True
    real = os.path.realpath(os.fsdecode(path))
    return not real.startswith("/proc/") or real.startswith("/proc/self/") or real.startswith(f"/proc/{os.getpid()}/")
def hook(event, args):
    if event.startswith(DENY):
        raise PermissionError(f"sandbox: {event} is not allowed")
    if event == "open":
        path, mode, flags = args
        writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (isinstance(flags, int) and flags & WRITE_FLAGS)
        if path is not None and writes and not inside(path):
            raise PermissionError(f"sandbox: writing {path!r} outside the working directory")
        if path is not None and not own_proc(path):
            raise PermissionError(f"sandbox: reading {path!r} is not allowed")
    elif event in PATHS:
        for path in args[:2]:
            if isinstance(path, (str, bytes, os.PathLike)) and not inside(path):
                raise PermissionError(f"sandbox: {event} outside the working directory")
sys.addaudithook(hook)
nonce = config.pop("nonce")
namespace = {"__name__": "__main__", "__builtins__": __builtins__}
try:
    exec(compile(config.pop("program"), "solution.py", "exec"), namespace)
except BaseException as e:
    sys.stdout.flush()
    line = (str(e).strip().splitlines() or [""])[0][:200]
    sys.stderr.write(f"\n{type(e).__name__}: {line}\n")
    sys.stderr.flush()
    os._exit(1)
sys.stdout.write("\n" + nonce + "\n")
sys.stdout.flush()
os._exit(0)
'''


@dataclass(frozen=True)
class Limits:
    wall_seconds: float = 10.0
    cpu_seconds: int = 5
    memory_mb: int = 512
    processes: int = 1  # beyond the ones the user already runs (RLIMIT_NPROC counts per user)
    file_size_mb: int = 1  # any file, stdout included
    open_files: int = 64
    output_chars: int = 4000  # kept of stdout and stderr each

    @classmethod
    def from_dict(cls, d: dict) -> "Limits":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Result:
    passed: bool  # ran to the end without an exception
    reason: str
    stdout: str = ""
    stderr: str = ""
    returncode: int | None = None


@functools.lru_cache(maxsize=None)
def network_namespace_prefix() -> tuple[str, ...]:
    """`unshare -n` (as root) or `unshare -rn` (a user namespace) if this machine allows it, else ()."""
    if not sys.platform.startswith("linux") or shutil.which("unshare") is None:
        return ()
    prefix = ("unshare", "-n") if os.geteuid() == 0 else ("unshare", "-rn")
    try:
        ok = subprocess.run([*prefix, "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        ok = False
    return prefix if ok else ()


def _nobody() -> int | None:
    if os.geteuid() != 0:
        return None
    import pwd

    try:
        return pwd.getpwnam("nobody").pw_uid
    except KeyError:
        return 65534


def user_processes() -> int:
    """Processes the child's user runs already (RLIMIT_NPROC counts them all)."""
    try:
        uid = _nobody() if os.geteuid() == 0 else os.getuid()
        return sum(1 for p in os.listdir("/proc") if p.isdigit() and os.stat(f"/proc/{p}").st_uid == uid)
    except OSError:
        return 256  # no /proc (macOS): a loose cap; the audit hook refuses new processes anyway


def run_python(program: str, limits: Limits = Limits()) -> Result:
    home = tempfile.mkdtemp(prefix="workbench-sandbox-")
    drop_to = _nobody()
    nonce = secrets.token_hex(16)
    rlimits = {
        "RLIMIT_CPU": (int(limits.cpu_seconds), int(limits.cpu_seconds) + 1),  # SIGXCPU, then SIGKILL
        "RLIMIT_AS": (limits.memory_mb * 1024 * 1024,) * 2,
        "RLIMIT_NPROC": (user_processes() + limits.processes,) * 2,
        "RLIMIT_FSIZE": (limits.file_size_mb * 1024 * 1024,) * 2,
        "RLIMIT_NOFILE": (limits.open_files,) * 2,
        "RLIMIT_CORE": (0, 0),
    }
    if sys.platform == "darwin":
        rlimits.pop("RLIMIT_AS")  # macOS refuses it
    config = {"program": program, "nonce": nonce, "rlimits": rlimits, "home": home, "drop_to": drop_to,
              "preload": PRELOAD}
    env = {"PATH": "/usr/bin:/bin", "HOME": home, "TMPDIR": home, "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        if drop_to is not None:
            os.chown(home, drop_to, -1)
        with open(os.path.join(home, ".stdout"), "w+b") as out, open(os.path.join(home, ".stderr"), "w+b") as err:
            if drop_to is not None:
                os.chmod(out.name, 0o600)
                os.chmod(err.name, 0o600)
            process = subprocess.Popen(
                [*network_namespace_prefix(), sys.executable, "-I", "-c", CHILD],
                stdin=subprocess.PIPE, stdout=out, stderr=err, cwd=home, env=env, start_new_session=True,
            )
            timed_out = False
            try:
                process.stdin.write((json.dumps(config) + "\n").encode())
                process.stdin.close()
            except (BrokenPipeError, OSError):
                pass
            try:
                process.wait(timeout=limits.wall_seconds)
            except subprocess.TimeoutExpired:
                timed_out = True
            _kill_group(process)
            stdout, stderr = _read(out, limits.output_chars), _read(err, limits.output_chars)
            out.seek(max(0, os.fstat(out.fileno()).st_size - 64))
            ended = out.read().rstrip(b"\n").endswith(nonce.encode())
    finally:
        shutil.rmtree(home, ignore_errors=True)
    code = process.returncode
    if code == 0 and ended:
        stdout = stdout.replace(nonce, "").rstrip("\n")
        return Result(True, "ran to the end", stdout, stderr, code)
    if timed_out:
        reason = f"timed out after {limits.wall_seconds:g} s (wall clock)"
    elif code in (-signal.SIGXCPU, -signal.SIGKILL):  # SIGKILL: the hard CPU limit (we kill only on timeout)
        reason = f"CPU limit of {limits.cpu_seconds} s exceeded"
    elif code == -signal.SIGXFSZ or "File too large" in stderr:
        reason = f"output or file larger than {limits.file_size_mb} MB"
    elif code is not None and code < 0:
        reason = f"killed by signal {signal.Signals(-code).name}"
    else:
        lines = [line for line in stderr.splitlines() if line.strip()]
        reason = lines[-1][:200] if lines else f"exit code {code}"
    return Result(False, reason, stdout, stderr, code)


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()


def _read(f, limit: int) -> str:
    f.seek(0)
    data = f.read(limit * 4 + 64).decode("utf-8", "replace")
    return data[: limit] + ("…" if len(data) > limit else "")
