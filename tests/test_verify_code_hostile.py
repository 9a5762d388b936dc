"""Hostile completions against the code verifier: each is contained and scores 0.

Every attack of issue 20 (the audit hook switched off, writes and deletes through directory fds,
fifos and device nodes, detached processes, killing other sandboxes, forged passes) plus the
earlier ones. Each completion pairs an attack with a wrong `add`; where an attack aims past the
sandbox, the test also checks the host. After every test: no sandbox process, no temp folder.
"""

from __future__ import annotations

import os
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

import test_verify_code
from sandbox_checks import no_sandbox_leftovers, sandbox_processes  # noqa: F401 (a fixture)
from workbench.verify import VerifierPool, get_verifier

LIMITS = {"wall_seconds": 60, "cpu_seconds": 1, "memory_mb": 256}  # a loaded machine may take long to give 1 s of CPU
ADD = {**test_verify_code.ADD, "limits": LIMITS}  # compared in the verifier
ADD_JUDGED = {**test_verify_code.ADD_JUDGED, "limits": LIMITS}  # compared in the judge's sandbox
WRONG = "\ndef add(a, b):\n    return a - b\n"

pytestmark = pytest.mark.usefixtures("no_sandbox_leftovers")


def score(completion: str, example: dict = ADD):
    return get_verifier("code")(completion, example)


def contained(attack: str, reason: str | None = None, examples=(ADD, ADD_JUDGED)) -> None:
    for example in examples:
        wrong = "" if "def add" in attack else WRONG  # an attack may bring its own wrong add
        verdict = score(f"```python\n{attack}{wrong}```", example)
        assert verdict.score == 0.0, verdict
        if reason is not None:
            assert reason in verdict.reason, verdict


# attack -> a phrase of the reason when the attack itself must end the run (None: the wrong add does)
HOSTILE = {
    "infinite loop": ("while True:\n    pass", "CPU limit"),
    "fork bomb": ("import os\nwhile True:\n    os.fork()", "BlockingIOError"),
    "fork through posix": ("import posix\nif posix.fork() == 0:\n    import time\n    time.sleep(600)", None),
    "subprocess": ("import subprocess\nsubprocess.run(['true'])", "FileNotFoundError"),
    "memory hog": ("x = bytearray(8 * 1024 ** 3)", "MemoryError"),
    "growing memory": ("hog = []\nwhile True:\n    hog.append(bytearray(10 ** 7))", "MemoryError"),
    "socket": ("import socket\nsocket.create_connection(('1.1.1.1', 53), timeout=5)", "unreachable"),
    "kill the parent": ("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)", None),
    "ctypes kills everything it can": ("import ctypes\nctypes.CDLL(None).kill(-1, 9)", None),
    "huge output": ("while True:\n    print('x' * 100000)", "File too large"),
    "fake success": ("import os\nos._exit(0)", "exit code 0"),
    "sys.exit(0)": ("import sys\nsys.exit(0)", "SystemExit"),
    "prints a pass": ("print('all tests passed')\nprint('{\"passed\": true}')", None),
    "the audit hook switched off": ("import __main__\n__main__.DENY = ()\n__main__.inside = lambda p: True", None),
    "an __eq__ that always says True": (
        "class Anything:\n    def __eq__(self, other):\n        return True\n    __hash__ = object.__hash__\n"
        "def add(a, b):\n    return Anything()", "not plain data"),
    "an int subclass that always equals": (
        "class Same(int):\n    def __eq__(self, other):\n        return True\n    __hash__ = int.__hash__\n"
        "def add(a, b):\n    return Same(0)", "not plain data"),
    "a nonce read from __main__ or a caller's frame": (
        "import os, sys\nframe, seen = sys._getframe(0), []\nwhile frame is not None:\n"
        "    seen += [v for v in frame.f_globals.values() if isinstance(v, str)]\n    frame = frame.f_back\n"
        "print(*seen)\nos._exit(0)", "exit code 0"),
    "os._exit patched to print first": (
        "import os\nexit = os._exit\nos._exit = lambda code: (print('passed'), exit(0))", None),
    "forged protocol messages": (
        "import __main__\n__main__._send({'ready': ['add']})\nfor _ in range(4):\n"
        "    __main__._send({'value': 5})\n__main__._send({'passed': True})", None),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_completions_are_contained(name):
    attack, reason = HOSTILE[name]
    contained(attack, reason)


def test_sleeping_forever_is_stopped_by_the_wall_clock():
    verdict = score("import time\ntime.sleep(600)" + WRONG, {**ADD, "limits": {**LIMITS, "wall_seconds": 2}})
    assert verdict.score == 0.0 and "timed out after 2 s" in verdict.reason


def test_the_network_is_unreachable_even_with_the_hook_gone():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    try:
        contained("import __main__\n__main__.DENY = ()\n"
                  "import _socket\nfor _ in range(3):\n    s = _socket.socket()\n    s.settimeout(2)\n"
                  f"    try:\n        s.connect(('127.0.0.1', {port}))\n    except OSError:\n        pass\n")
        with pytest.raises(TimeoutError):
            listener.accept()  # nothing ever reached the host's loopback
    finally:
        listener.close()


def test_writes_and_deletes_outside_never_reach_the_host(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    folder = str(tmp_path)
    attacks = [
        f"import os\nos.mkfifo({folder + '/fifo'!r})",
        "import os, stat\nos.mknod('/dev/shm/workbench-hostile', stat.S_IFREG | 0o600)",
        f"import os\nfd = os.open({folder!r}, os.O_RDONLY)\nos.close(os.open('made', os.O_CREAT | os.O_WRONLY, dir_fd=fd))",
        f"import os\nfd = os.open({folder!r}, os.O_RDONLY)\nos.unlink('victim', dir_fd=fd)",
        f"import os\nfd = os.open({folder!r}, os.O_RDONLY)\nos.fchdir(fd)\nopen('x', 'w').write('x')",
        f"import shutil\nshutil.rmtree({folder!r})",
        "import shutil\nshutil.rmtree('/', ignore_errors=True)",
    ]
    for attack in attacks:
        contained(attack, examples=(ADD,))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["victim"] and victim.read_text() == "keep me"
    assert not os.path.exists("/dev/shm/workbench-hostile")


def test_detached_processes_die_with_the_sandbox():
    """`sleep 600` in a new session, retried while the process limit refuses it: gone once the verdict is in."""
    attack = ("import os, subprocess, sys, time\nstarted = 0\nfor _ in range(50):\n    try:\n"
              "        subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'], start_new_session=True)\n"
              "        started += 1\n    except OSError:\n        time.sleep(0.01)\n"
              "    if os.fork() == 0:\n        os.setsid()\n        time.sleep(600)\n")
    contained(attack)  # the fixture then checks that none of them is left


def test_tests_and_expected_values_never_reach_the_completion():
    """The completion's process never holds the tests: a completion that looks for them finds nothing."""
    snoop = ("import gc, os\ndef add(a, b):\n"
             "    found = any(isinstance(o, str) and 'candidate' in o for o in gc.get_objects())\n"
             "    found = found or b'candidate' in open('/proc/self/cmdline', 'rb').read()\n"
             "    found = found or any('candidate' in n for n in os.listdir('.'))\n"
             "    return -999 if found else a + b\n")
    assert score(snoop, ADD).score == 1.0
    assert score(snoop, ADD_JUDGED).score == 1.0


HONEST = "    return a + b\n"
SABOTEURS = [
    "import os, time\nfor _ in range(200):\n    try:\n        os.kill(-1, 9)\n    except OSError:\n        pass\n    time.sleep(0.01)",
    "import os\nwhile True:\n    os.fork()",
    "while True:\n    pass",
    "hog = []\nwhile True:\n    hog.append(bytearray(10 ** 7))",
]


@pytest.mark.slow
def test_eight_hostile_and_eight_honest_in_parallel():
    """Saboteurs (kill -1, fork bombs, CPU and memory hogs) beside honest completions: every honest
    one scores as it does alone, every hostile one 0."""
    jobs = []
    for i in range(8):
        example = ADD if i % 2 else ADD_JUDGED
        jobs.append((HONEST, example, 1.0))
        jobs.append((SABOTEURS[i % len(SABOTEURS)] + WRONG, example, 0.0))
    with ThreadPoolExecutor(len(jobs)) as executor:
        verdicts = list(executor.map(lambda job: score(job[0], job[1]), jobs))
    assert [v.score for v in verdicts] == [expected for _, _, expected in jobs], verdicts


def test_the_pools_deadline_is_the_sandboxs_wall_clock():
    with VerifierPool(1) as pool:
        verdict = pool.verify("code", "import time\ntime.sleep(600)" + WRONG, ADD, timeout=4)
    assert verdict.score == 0.0 and "timed out" in verdict.reason, verdict


def test_a_killed_worker_takes_its_sandbox_with_it():
    before = sandbox_processes()
    with VerifierPool(1) as pool:
        result = []
        thread = threading.Thread(target=lambda: result.append(
            pool.verify("code", "import time\ntime.sleep(600)" + WRONG, ADD, timeout=120)))
        thread.start()
        worker = pool_worker_pid(before)
        os.kill(worker, 9)
        thread.join(60)
    assert result and result[0].score is None and "died" in result[0].reason, result


def pool_worker_pid(before) -> int:
    """The worker running a sandbox: the parent of the bwrap that appears."""
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for pid, name in sandbox_processes() - before:
            if name.startswith("bwrap"):
                with open(f"/proc/{pid}/stat") as f:
                    parent = int(f.read().rpartition(")")[2].split()[1])
                with open(f"/proc/{parent}/cmdline", "rb") as f:
                    if b"workbench.verify.worker" in f.read():
                        return parent
        time.sleep(0.05)
    raise AssertionError("no sandbox started")


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads /proc")
def test_killing_a_group_takes_the_sessions_its_members_started():
    """An unisolated sandbox leads its own session; a worker killed at its deadline takes it along."""
    import subprocess
    import sys
    import time

    from workbench.verify.sandbox import kill_group

    script = ("import os, subprocess, sys, time\n"
              "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'], start_new_session=True)\n"
              "print(child.pid, flush=True)\n"
              "time.sleep(600)\n")
    leader = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, process_group=0)
    escaped = int(leader.stdout.readline())
    kill_group(leader.pid)
    leader.wait(10)
    deadline = time.monotonic() + 10
    while running(escaped) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not running(escaped), "the session a group member started outlived the group"


def running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False
