"""The code verifier: run a completion's Python against the example's unit tests; decide outside it.

Example fields (HumanEval format): `prompt` (the function signature and docstring), `test` or
`tests` (code defining `check(candidate)`, or plain asserts; a list of asserts is joined),
`entry_point` (the function's name). Optional `limits`: overrides of `sandbox.Limits`.

The completion's process (prompt + completion code, in the sandbox) only computes: it answers
calls `{"call": name, "args": ...}` with the value as plain data (`plain.py`: numbers, strings,
lists, tuples, dicts, sets, None, bools; anything else, e.g. an object whose `__eq__` always says
True, fails). Nothing in it decides the verdict, and it never sees the tests or expected values.
- Tests made only of `assert candidate(<literals>) == <literal>` (most of HumanEval) are judged
  here: call, then compare the plain value with the literal.
- Any other test runs in a second fresh sandbox, the judge (prompt + tests, no completion code),
  where `candidate` (and any other name the completion defined and the prompt did not) is a stub
  that relays each call and returns the plain value; what it compares is thus plain data, with the
  test's own tolerances. Its "passed" or first failure is the verdict.
Score 1.0 when every test passes, 0.0 otherwise; None when the sandbox is unavailable.
"""

from __future__ import annotations

import ast
import builtins
import re
from pathlib import Path

from workbench.verify import plain
from workbench.verify.answer import split_thinking
from workbench.verify.registry import Verdict
from workbench.verify.sandbox import Limits, Sandbox, SandboxError, SandboxUnavailable, deadline_for

VERSION = "2"
CODE_BLOCK = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)
PLAIN_SOURCE = Path(plain.__file__).read_text()

# The completion's process: define its functions, then answer calls with plain values.
SOLUTION_SCRIPT = PLAIN_SOURCE + r'''
_namespace = {"__name__": "__main__", "__builtins__": __builtins__}
try:
    exec(compile(_config.pop("program"), "solution.py", "exec"), _namespace)
except BaseException as e:
    _send({"error": _describe(e)})
    os._exit(1)
_send({"ready": [k for k, v in list(_namespace.items()) if type(k) is str and not k.startswith("_") and callable(v)]})
for _line in _proto_in:
    try:
        _request = json.loads(_line)
        _value = _namespace[_request["call"]](*decode(_request["args"]), **decode(_request["kwargs"]))
        _send({"value": encode(_value)})
    except BaseException as e:
        _send({"raised": type(e).__name__, "error": _describe(e)})
    sys.stdout.flush()
os._exit(0)
'''

# The judge: the example's prompt and tests, with the completion's functions as relaying stubs.
JUDGE_SCRIPT = PLAIN_SOURCE + r'''
import builtins
def _remote(name):
    def call(*args, **kwargs):
        _send({"call": name, "args": encode(list(args)), "kwargs": encode(dict(kwargs))})
        answer = json.loads(_proto_in.readline())
        if "value" in answer:
            return decode(answer["value"])
        kind = getattr(builtins, answer.get("raised") or "", None)
        if not (isinstance(kind, type) and issubclass(kind, Exception)):
            kind = RuntimeError
        try:
            error = kind(answer["error"])
        except Exception:
            error = RuntimeError(answer["error"])
        raise error
    call.__name__ = name
    return call
_namespace = {"__name__": "__main__", "__builtins__": __builtins__}
for _source in (_config["prompt"], _config["prompt"] + "\n    pass\n"):  # a prompt may end in a bare signature
    try:
        exec(compile(_source, "prompt.py", "exec"), _namespace)
        break
    except SyntaxError:
        continue
_config.update(json.loads(_proto_in.readline()))  # the names the solution defined
for _name in _config["solution_names"]:
    if _name not in _namespace and not hasattr(builtins, _name):
        _namespace[_name] = _remote(_name)
if _config["entry"]:
    _namespace[_config["entry"]] = _remote(_config["entry"])
try:
    exec(compile(_config["test"], "test.py", "exec"), _namespace)
    if _config["entry"] and callable(_namespace.get("check")):
        _namespace["check"](_remote(_config["entry"]))
except BaseException as e:
    _where, _tb = "", e.__traceback__
    while _tb is not None:  # the test's line that failed
        if _tb.tb_frame.f_code.co_filename == "test.py":
            _where = " at: " + _config["test"].splitlines()[_tb.tb_lineno - 1].strip()[:100]
        _tb = _tb.tb_next
    _send({"failed": _describe(e) + _where})
else:
    _send({"passed": True})
sys.stdout.flush()
os._exit(0)
'''


def extract_code(completion: str, opened: bool = False) -> str:
    """The last fenced code block of the answer (`answer.split_thinking`: after the last </think>; a thinking
    that never closes has no answer), else the answer itself. `opened`: the prompt opened the thinking."""
    _, answer, _ = split_thinking(completion, opened)
    blocks = CODE_BLOCK.findall(answer)
    return blocks[-1] if blocks else answer


def test_source(example: dict) -> str:
    tests = example.get("test", example.get("tests", ""))
    if isinstance(tests, list):
        tests = "\n".join(str(t) for t in tests)
    return str(tests)


def literal_asserts(test: str, entry: str | None) -> list[tuple[str, tuple, object, str]] | None:
    """(name, args, expected, source) of each assert if the test is only `assert f(<literals>) == <literal>`
    (inside `def check(candidate)` calling `candidate`, or at the top level calling the solution's names);
    None for any other test (it goes to the judge)."""
    try:
        tree = ast.parse(test)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    cases: list[tuple[str, tuple, object, str]] = []

    def add(statement, call_names) -> bool:
        if isinstance(statement, (ast.Import, ast.ImportFrom, ast.Pass)):
            return True
        if isinstance(statement, (ast.Expr, ast.Assert)) and isinstance(getattr(statement, "value", None)
                                                                        or statement.test, ast.Constant):
            return True  # a docstring, `assert True`
        if not (isinstance(statement, ast.Assert) and isinstance(statement.test, ast.Compare)):
            return False
        compare = statement.test
        call = compare.left
        if not (len(compare.ops) == 1 and isinstance(compare.ops[0], ast.Eq) and isinstance(call, ast.Call)
                and isinstance(call.func, ast.Name) and call_names(call.func.id) and not call.keywords):
            return False
        try:
            args = tuple(ast.literal_eval(arg) for arg in call.args)
            expected = ast.literal_eval(compare.comparators[0])
            plain.dumps(args)
            plain.dumps(expected)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return False
        name = entry if call.func.id == "candidate" else call.func.id
        cases.append((name, args, expected, ast.get_source_segment(test, statement) or ""))
        return True

    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "check" and entry:
            params = [a.arg for a in node.args.args]
            if params != ["candidate"] or node.decorator_list:
                return None
            if not all(add(s, lambda name: name == "candidate") for s in node.body):
                return None
        elif isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets):
            try:
                ast.literal_eval(node.value)  # METADATA = {...}
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                return None
        elif not add(node, lambda name: not hasattr(builtins, name) and name != "candidate"):
            return None
    return cases or None


def _shorten(value, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _value(message: dict) -> object:
    """The plain value of a solution's answer; SandboxError for a raise, NotPlain for garbage."""
    if "value" in message:
        return plain.decode(message["value"])
    raise SandboxError(str(message.get("error", "no value"))[:200])


def judge_here(solution: Sandbox, cases) -> tuple[float, str]:
    for name, args, expected, source in cases:
        solution.send({"call": name, "args": plain.encode(list(args)), "kwargs": plain.encode({})})
        value = _value(solution.receive())
        if not (value == expected):
            return 0.0, f"AssertionError: {source[:100]} (got {_shorten(value)})"
    return 1.0, "all tests passed"


def judge_in_sandbox(solution: Sandbox, judge: Sandbox) -> tuple[float, str]:
    while True:
        message = judge.receive()
        if "call" in message:
            solution.send({"call": message["call"], "args": message["args"], "kwargs": message["kwargs"]})
            answer = solution.receive()
            if "value" in answer:  # re-encoded: the judge only ever sees what plain.encode writes
                judge.send({"value": plain.encode(plain.decode(answer["value"]))})
            else:
                judge.send({"raised": str(answer.get("raised", ""))[:40], "error": str(answer.get("error", ""))[:200]})
        elif message.get("passed") is True:
            return 1.0, "all tests passed"
        else:
            return 0.0, str(message.get("failed", "the judge said nothing"))[:200]


def verify(completion: str, example: dict) -> Verdict:
    test = test_source(example)
    if not test.strip():
        return Verdict(None, "example has no tests")
    code = extract_code(completion, opened=bool(example.get("think_in_prompt")))
    if not code.strip():
        return Verdict(0.0, "no code found")
    entry = example.get("entry_point")
    if entry is not None and not re.fullmatch(r"[A-Za-z_]\w*", str(entry)):
        return Verdict(None, f"entry_point {str(entry)[:40]!r} is not a Python name")
    prompt = str(example.get("prompt", ""))
    limits = Limits.from_dict(example.get("limits") or {})
    deadline = deadline_for(limits)
    summary = code.strip().splitlines()[0][:80]
    cases = literal_asserts(test, entry)
    judge = None
    try:
        with Sandbox(SOLUTION_SCRIPT, {"program": f"{prompt}{code}\n"}, limits, deadline) as solution:
            if cases is None:  # started now, so both interpreters start up at once
                judge = Sandbox(JUDGE_SCRIPT, {"prompt": prompt, "test": test, "entry": entry}, limits, deadline)
            ready = solution.receive()
            names = ready.get("ready")
            if type(names) is not list:
                return Verdict(0.0, str(ready.get("error", "the solution did not start"))[:200], summary)
            if judge is None:
                return Verdict(*judge_here(solution, cases), summary)
            judge.send({"solution_names": [n for n in names if type(n) is str and n.isidentifier()][:1000]})
            return Verdict(*judge_in_sandbox(solution, judge), summary)
    except SandboxUnavailable as e:
        return Verdict(None, str(e))
    except SandboxError as e:
        return Verdict(0.0, str(e)[:200], summary)
    except plain.NotPlain as e:
        return Verdict(0.0, f"the solution's answer is not plain data: {e}"[:200], summary)
    finally:
        if judge is not None:
            judge.close()
