"""Run untrusted Python in a sandbox the kernel enforces, talking to it only in plain data.

A `Sandbox` is one fresh interpreter (`python -I -S -B`) running a script of ours that reads a
config line, sets its rlimits, and then speaks JSON lines on stdin/stdout; its other output
(and the completion's prints) goes to an unlinked temporary file, capped by RLIMIT_FSIZE.

Isolation (`isolation()` picks it once per process):
- Linux, `bubblewrap` (Debian's `bwrap`): fresh mount, PID, network, IPC and UTS namespaces. The
  root is an empty read-only tmpfs holding only Python's own installation and /usr/lib (read-only),
  four /dev nodes, a /proc of the sandbox's own PID namespace, and `/sandbox`: a small tmpfs, the
  only writable place, which disappears with the namespace (nothing is left on the host's disk).
  Every process the completion starts lives in its PID namespace and dies with it; completions in
  parallel cannot see or signal each other. Not root: a user namespace (no capabilities, and
  RLIMIT_NPROC counts only this sandbox's processes). Root: no user namespace (it would map to
  root, whom RLIMIT_NPROC does not bind); the script drops to its own uid (1,000,000 + bwrap's
  pid, unique while it runs) with every capability gone. `--die-with-parent`: a killed caller
  (a verifier worker past its deadline) takes its sandboxes with it.
- macOS, `sandbox-exec` with a deny-by-default profile (reads of Python and system libraries,
  writes to the sandbox's own temporary folder, no network, no fork). Built and tested here with a
  fake; not verified on a Mac.
- Anywhere else, or when the above does not work here: SandboxUnavailable with one line saying
  what to install, unless the user sets WORKBENCH_UNISOLATED_CODE=1 (rlimits, a fresh temporary
  folder and its own session, killed at the end, only: the completion can read and write what the
  user can, and a process that leaves the session outlives it).
rlimits everywhere: CPU seconds, address space (not on macOS), processes, file size, open files,
no core dumps. The wall clock is the caller's deadline, enforced from outside.
"""

from __future__ import annotations

import functools
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from workbench.verify import plain

OPT_IN = "WORKBENCH_UNISOLATED_CODE"
SANDBOX_HOME = "/sandbox"
SANDBOX_UIDS = 1_000_000  # root mode: uid = this + the outer bwrap's pid
TEMP_PREFIX = "workbench-sandbox-"  # host folders (macOS, unisolated): + the caller's pid
MAX_LINE = 8 * 1024 * 1024  # one protocol line from a sandbox

# Run first in every sandboxed interpreter: the protocol, the rlimits, the uid.
PRELUDE = r'''
import json, os, sys
try:
    os.setsid()  # no terminal to reach; under bubblewrap its init stays in the caller's group (killed with it)
except OSError:
    pass  # already leads a session (unisolated)
_proto_in = sys.stdin
_proto_out = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)  # prints go to the capture file (fd 2)
sys.stdout = open(1, "w", closefd=False)
sys.stdin = open(os.devnull)
def _send(message):
    _proto_out.write(json.dumps(message) + "\n")
    _proto_out.flush()
def _describe(e):
    line = (str(e).strip().splitlines() or [""])[0][:200]
    return f"{type(e).__name__}: {line}" if line else type(e).__name__
_config = json.loads(_proto_in.readline())
import resource
for _name, _value in _config["rlimits"].items():
    try:
        resource.setrlimit(getattr(resource, _name), tuple(_value))
    except (ValueError, OSError, AttributeError):
        pass
if _config["drop_to"] is not None:
    os.setgroups([])
    os.setgid(_config["drop_to"])
    os.setuid(_config["drop_to"])
    if os.getuid() != _config["drop_to"]:
        os._exit(97)
os.chdir(_config["home"])
'''


class SandboxUnavailable(Exception):
    """The platform's isolation is missing here and the user has not opted out of it."""


class SandboxError(Exception):
    """The sandboxed process ended, timed out, or said something that is not plain data."""


@dataclass(frozen=True)
class Limits:
    wall_seconds: float = 10.0
    cpu_seconds: int = 5
    memory_mb: int = 512
    processes: int = 8  # processes and threads beyond the first, per sandbox
    file_size_mb: int = 1  # any file, the captured output included
    open_files: int = 64
    output_chars: int = 4000  # kept of the captured output

    @classmethod
    def from_dict(cls, d: dict) -> "Limits":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


# --- one deadline --------------------------------------------------------------------------


@dataclass(frozen=True)
class Deadline:
    at: float  # time.monotonic()
    seconds: float  # the time it allowed, for messages


_outer_deadline: Deadline | None = None


def set_deadline(seconds: float | None) -> None:
    """The caller's deadline, `seconds` from now; a verifier worker sets it from the pool's timeout."""
    global _outer_deadline
    _outer_deadline = None if seconds is None else Deadline(time.monotonic() + seconds, seconds)


def deadline_for(limits: Limits) -> Deadline:
    """The sandbox's wall clock, or the caller's deadline if that comes first."""
    own = Deadline(time.monotonic() + limits.wall_seconds, limits.wall_seconds)
    return own if _outer_deadline is None or own.at <= _outer_deadline.at else _outer_deadline


# --- isolation backends --------------------------------------------------------------------


def python_executable() -> str:
    return os.path.realpath(sys.executable)


def _python_roots() -> list[str]:
    """What the interpreter needs read-only: its installation (and the binary, if elsewhere)."""
    roots = [os.path.realpath(sys.base_prefix)]
    executable = python_executable()
    if not executable.startswith(roots[0] + os.sep):
        roots.append(executable)
    return roots


def bubblewrap_command(limits: Limits, as_root: bool) -> list[str]:
    """bwrap's arguments up to the command (see the module docstring for what each part is for)."""
    command = ["bwrap", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
               "--unshare-cgroup-try", "--die-with-parent", "--clearenv",
               "--setenv", "HOME", SANDBOX_HOME, "--setenv", "TMPDIR", SANDBOX_HOME,
               "--setenv", "LANG", "C.UTF-8", "--setenv", "PATH", "/usr/bin:/bin"]
    if as_root:
        command += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        command += ["--unshare-user", "--disable-userns", "--cap-drop", "ALL"]
    made: set[str] = set()
    bound: list[str] = []

    def bind(path: str) -> None:
        if any(path == b or path.startswith(b + os.sep) for b in bound):
            return
        chain, parent = [], os.path.dirname(path)
        while parent not in ("/", "") and parent not in made:
            chain.append(parent)
            parent = os.path.dirname(parent)
        for directory in reversed(chain):  # bwrap would make these 0700: the dropped uid could not pass
            command.extend(["--perms", "0755", "--dir", directory])
            made.add(directory)
        command.extend(["--ro-bind", path, path])
        bound.append(path)

    for root in _python_roots():
        bind(root)
    for library in ("/usr/lib", "/usr/lib64", "/usr/lib32"):
        if os.path.isdir(library):
            bind(library)
    for link in ("/lib", "/lib64", "/lib32"):
        if os.path.islink(link):
            command += ["--symlink", os.readlink(link), link]
        elif os.path.isdir(link):
            bind(link)
    for device in ("null", "zero", "random", "urandom"):
        command += ["--dev-bind", f"/dev/{device}", f"/dev/{device}"]
    tmpfs_bytes = max(1, limits.file_size_mb) * 4 * 1024 * 1024
    command += ["--proc", "/proc", "--size", str(tmpfs_bytes), "--perms", "1777", "--tmpfs", SANDBOX_HOME,
                "--remount-ro", "/", "--chdir", SANDBOX_HOME]
    return command


def sandbox_exec_profile(home: str) -> str:
    """macOS: deny everything but reading Python and the system, and writing `home`."""
    reads = " ".join(f'(subpath "{root}")' for root in _python_roots())
    return f"""(version 1)
(deny default)
(allow process-exec (literal "{python_executable()}"))
(allow file-read-metadata)
(allow file-read* {reads} (subpath "/usr/lib") (subpath "/System/Library") (subpath "/Library/Apple")
    (subpath "/private/var/db/dyld") (literal "/dev/null") (literal "/dev/urandom") (literal "/dev/random"))
(allow file-read* file-write* (subpath "{home}") (literal "/dev/null"))
(allow sysctl-read)
(allow signal (target self))
"""


@dataclass(frozen=True)
class Isolation:
    name: str  # "bubblewrap", "sandbox-exec" or "none"
    problem: str | None = None  # why the platform's isolation is not available here
    tool: str | None = None  # the path of bwrap or sandbox-exec


@functools.lru_cache(maxsize=None)
def _probe(platform: str) -> Isolation:
    if platform.startswith("linux"):
        tool = shutil.which("bwrap")
        if tool is None:
            return Isolation("bubblewrap", "bubblewrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)")
        command = [tool, *bubblewrap_command(Limits(), os.geteuid() == 0)[1:], python_executable(), "-I", "-S", "-c", "pass"]
        try:
            done = subprocess.run(command, capture_output=True, timeout=30, env=_scrubbed_env("/"))
        except (OSError, subprocess.SubprocessError) as e:
            return Isolation("bubblewrap", f"bubblewrap does not run here ({e})")
        if done.returncode != 0:
            why = (done.stderr.decode(errors="replace").strip().splitlines() or ["no message"])[-1][:120]
            return Isolation("bubblewrap", f"bubblewrap cannot make namespaces here ({why})")
        return Isolation("bubblewrap", tool=tool)
    if platform == "darwin":
        tool = shutil.which("sandbox-exec")
        if tool is None:
            return Isolation("sandbox-exec", "sandbox-exec is missing")
        return Isolation("sandbox-exec", tool=tool)
    return Isolation("none", f"no sandbox for untrusted code on {platform}")


def isolation() -> Isolation:
    """The isolation used here; SandboxUnavailable (one line) if missing and not opted out."""
    found = _probe(sys.platform)
    if found.problem is None:
        return found
    if os.environ.get(OPT_IN) == "1":
        return Isolation("none")
    raise SandboxUnavailable(f"code sandbox unavailable: {found.problem}; refusing to run untrusted code "
                             f"(set {OPT_IN}=1 to run it with rlimits only)")


# --- one sandboxed process -----------------------------------------------------------------


class Sandbox:
    """`script` (after PRELUDE) in a fresh sandboxed interpreter; `config` reaches it as `_config`."""

    def __init__(self, script: str, config: dict, limits: Limits, deadline: Deadline) -> None:
        self.limits = limits
        self.deadline = deadline.at
        self.timed_out = f"timed out after {deadline.seconds:.3g} s (wall clock)"
        chosen = isolation()
        self.kind = chosen.name
        self._buffer = b""
        self._pid1 = None  # bubblewrap: a pidfd of the namespace's init
        self._home = None
        self.output_file = tempfile.TemporaryFile()  # unlinked: gone when closed, even if we are killed
        python = [python_executable(), "-I", "-S", "-B", "-c", PRELUDE + script]
        rlimits = {
            "RLIMIT_CPU": (int(limits.cpu_seconds), int(limits.cpu_seconds) + 1),  # SIGXCPU, then SIGKILL
            "RLIMIT_AS": (limits.memory_mb * 1024 * 1024,) * 2,
            "RLIMIT_FSIZE": (limits.file_size_mb * 1024 * 1024,) * 2,
            "RLIMIT_NOFILE": (limits.open_files,) * 2,
            "RLIMIT_CORE": (0, 0),
        }
        drop_to = None
        info_read = info_write = None
        kwargs = {}
        if self.kind == "bubblewrap":
            as_root = os.geteuid() == 0
            info_read, info_write = os.pipe()
            command = bubblewrap_command(limits, as_root)
            command = [chosen.tool, "--info-fd", str(info_write), *command[1:], *python]
            kwargs["pass_fds"] = (info_write,)
            home = SANDBOX_HOME
            # threads count too; not root: the namespace's init (bwrap) is one of the user's processes
            rlimits["RLIMIT_NPROC"] = ((1 if as_root else 2) + limits.processes,) * 2
        else:
            self._home = home = tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-")
            command = python
            if self.kind == "sandbox-exec":
                command = [chosen.tool, "-p", sandbox_exec_profile(os.path.realpath(home)), *python]
                rlimits.pop("RLIMIT_AS")  # macOS refuses it (and the profile forbids fork): it stays in
                # its caller's process group, so a verifier worker killed with its group takes it along
            else:
                kwargs["start_new_session"] = True  # unisolated: its group is killed at the end
        try:
            self.process = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.output_file,
                cwd=home if self._home else None, env=_scrubbed_env(home), **kwargs)
        except OSError:
            self.close()
            raise
        finally:
            if info_write is not None:
                os.close(info_write)
        try:
            if info_read is not None:
                pid1 = self._read_info(info_read)
                drop_to = SANDBOX_UIDS + self.process.pid if os.geteuid() == 0 else None
                self._pid1 = _pidfd_of_child(pid1, self.process)
            self.send({"rlimits": rlimits, "drop_to": drop_to, "home": home, **config})
        except BaseException:
            self.close()
            raise

    def _read_info(self, fd: int) -> int | None:
        """bwrap's --info-fd JSON (it has the host pid of the namespace's init), within the deadline."""
        data = b""
        try:
            while True:
                remaining = self.deadline - time.monotonic()
                if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                    raise SandboxError(self.timed_out)
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                data += chunk
        finally:
            os.close(fd)
        try:
            return int(json.loads(data)["child-pid"])
        except (ValueError, KeyError, TypeError):
            return None  # bwrap failed to start: its exit status says why

    def send(self, message: dict) -> None:
        try:
            self.process.stdin.write((json.dumps(message) + "\n").encode())
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # it ended: the next receive says how

    def receive(self) -> dict:
        """The next message; SandboxError when it ends, overruns the deadline, or sends garbage."""
        fd = self.process.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise SandboxError(self.timed_out)
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise SandboxError(self._ended())
            self._buffer += chunk
            if len(self._buffer) > MAX_LINE and b"\n" not in self._buffer:
                raise SandboxError(f"a reply longer than {MAX_LINE // 1024 // 1024} MB")
        line, _, self._buffer = self._buffer.partition(b"\n")
        message = plain.loads(line)
        if type(message) is not dict:
            raise SandboxError("a reply that is not a JSON object")
        return message

    def _ended(self) -> str:
        """Why the process ended before answering."""
        try:
            code = self.process.wait(timeout=max(0.1, self.deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            return "closed its output and hung"
        if code in (-signal.SIGXCPU, 128 + signal.SIGXCPU, -signal.SIGKILL, 128 + signal.SIGKILL):
            return f"CPU limit of {self.limits.cpu_seconds} s exceeded"  # SIGKILL: the hard limit (we kill later)
        if code in (-signal.SIGXFSZ, 128 + signal.SIGXFSZ) or "File too large" in self.output():
            return f"output or file larger than {self.limits.file_size_mb} MB"
        if 128 < code < 128 + 65:  # bwrap reports its child's signal as 128 + n
            code = -(code - 128)
        if code < 0:
            return f"killed by signal {signal.Signals(-code).name}"
        return f"exit code {code} before answering"

    def output(self) -> str:
        """The captured output (prints, tracebacks), at most `limits.output_chars` of it."""
        limit = self.limits.output_chars
        self.output_file.seek(0)
        data = self.output_file.read(limit * 4 + 64).decode("utf-8", "replace")
        return data[:limit] + ("…" if len(data) > limit else "")

    def close(self) -> None:
        """Kill it and everything it started; wait until they are gone."""
        process = getattr(self, "process", None)
        if process is not None:
            if self._pid1 is not None:  # killing a PID namespace's init kills the whole namespace
                try:
                    signal.pidfd_send_signal(self._pid1, signal.SIGKILL)
                except OSError:
                    pass
                os.close(self._pid1)
                self._pid1 = None
                try:  # bwrap exits after its init, whose exit waits until the namespace is empty
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
            if self.kind == "none":
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            process.kill()
            process.wait()
            for stream in (process.stdin, process.stdout):
                try:
                    stream.close()
                except OSError:
                    pass
        self.output_file.close()
        if self._home is not None:
            shutil.rmtree(self._home, ignore_errors=True)
            self._home = None

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _scrubbed_env(home: str) -> dict:
    return {"PATH": "/usr/bin:/bin", "HOME": home, "TMPDIR": home, "LANG": "C.UTF-8"}


def _pidfd_of_child(pid: int | None, parent: subprocess.Popen) -> int | None:
    """A pidfd of `pid` if it is still `parent`'s child (so not a recycled number), else None."""
    if pid is None or not hasattr(os, "pidfd_open"):
        return None
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return None
    if (_parent_and_group(pid) or (None,))[0] == parent.pid:
        return fd
    os.close(fd)
    return None


def kill_group(pgid: int) -> None:
    """SIGKILL process group `pgid` and the sandboxes its members started.

    A sandbox leaves its caller's group (bubblewrap's namespace init, or an unisolated sandbox's
    own session), and --die-with-parent does not cover a caller killed while bwrap is still
    setting up. So: stop the group (nothing in it can start anything more), note the children of
    its members that are outside it, kill the group, then kill those (a namespace's init takes
    the whole namespace; a session leader's group goes first)."""
    try:
        os.killpg(pgid, signal.SIGSTOP)
    except (ProcessLookupError, PermissionError):
        return
    escaped = _pidfds_of_escaped_children(pgid)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for pid, fd in escaped:
        try:
            if (_parent_and_group(pid) or (0, None))[1] == pid:
                os.killpg(pid, signal.SIGKILL)
            signal.pidfd_send_signal(fd, signal.SIGKILL)
        except OSError:
            pass
        os.close(fd)


def _parent_and_group(pid: int) -> tuple[int, int] | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return int(fields[1]), int(fields[2])
    except (OSError, ValueError, IndexError):
        return None


def _pidfds_of_escaped_children(pgid: int) -> list[tuple[int, int]]:
    """(pid, pidfd) of each process whose parent is in group `pgid` but which is not (Linux only)."""
    if not hasattr(os, "pidfd_open") or not os.path.isdir("/proc/self"):
        return []
    known = {int(e): _parent_and_group(int(e)) for e in os.listdir("/proc") if e.isdigit()}
    found = []
    for pid, known_pid in known.items():
        if known_pid is None or known_pid[1] == pgid or (known.get(known_pid[0]) or (0, None))[1] != pgid:
            continue
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            continue
        if _parent_and_group(pid) == known_pid:  # the same process (its number was not reused meanwhile)
            found.append((pid, fd))
        else:
            os.close(fd)
    return found


def remove_leftovers(owner_pid: int) -> None:
    """Host temporary folders of a process that was killed before it could remove them."""
    for folder in Path(tempfile.gettempdir()).glob(f"{TEMP_PREFIX}{owner_pid}-*"):
        shutil.rmtree(folder, ignore_errors=True)


# --- a program run to its end (for tools and tests; not a verdict) ---------------------------

RUN_SCRIPT = r'''
try:
    exec(compile(_config["program"], "program.py", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
    _message = {"ended": True}
except BaseException as e:
    _message = {"error": _describe(e)}
sys.stdout.flush()
_send(_message)
os._exit(0)
'''


@dataclass(frozen=True)
class Result:
    passed: bool  # the program said it ran to its end (its own word: this is not a verdict)
    reason: str
    output: str = ""


def run_python(program: str, limits: Limits = Limits()) -> Result:
    with Sandbox(RUN_SCRIPT, {"program": program}, limits, deadline_for(limits)) as box:
        try:
            message = box.receive()
        except (SandboxError, plain.NotPlain) as e:
            return Result(False, str(e), box.output())
        if message.get("ended") is True:
            return Result(True, "ran to the end", box.output())
        return Result(False, str(message.get("error", "no answer"))[:200], box.output())
