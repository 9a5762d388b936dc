"""Task suites: a JSONL file plus a tiny spec (prompt template, answer field, verifier).

Shipped suites live in `workbench/eval/suites/` (inside the wheel); `arithmetic` and
`countdown` are generated from a seed, any size. A user suite is a spec file (TOML or JSON,
its `file` relative to the spec) or a bare JSONL file (math verifier, prompt from `prompt`,
`question` or `problem`). Malformed lines are reported as FILE:LINE and skipped; the rest runs.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random
import re
import sys
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from workbench.errors import UserError
from workbench.jsonl import parse_line, parse_lines

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SUITES_DIR = Path(__file__).resolve().parent / "suites"
# DeepSeek's guidance for R1 and its distills: no system prompt, this line in the user prompt.
STEP_BY_STEP = "Please reason step by step, and put your final answer within \\boxed{}."


@dataclass(frozen=True)
class SuiteSpec:
    name: str
    file: str = ""  # JSONL (or .jsonl.gz); empty for generated suites
    prompt_template: str = "{problem}\n" + STEP_BY_STEP  # {field} is replaced by the record's field
    answer_field: str = "answer"
    answer_after: str = ""  # keep only the text after this marker (GSM8K: "####")
    verifier: str = "math"
    id_field: str = ""
    generator: str = ""  # "arithmetic" | "countdown"

    @classmethod
    def from_dict(cls, d: dict) -> "SuiteSpec":
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise UserError(f"suite spec: unknown field {unknown[0]!r} (known: {', '.join(sorted(names))})")
        return cls(**d)

    def to_dict(self) -> dict:
        return asdict(self)


BUILT_IN = {
    "gsm8k": SuiteSpec("gsm8k", "gsm8k_test.jsonl", "{question}\n" + STEP_BY_STEP, answer_after="####"),
    "math500": SuiteSpec("math500", "math500_test.jsonl", id_field="unique_id"),
    "aime24": SuiteSpec("aime24", "aime24_test.jsonl", id_field="id"),
    "aime25": SuiteSpec("aime25", "aime25_test.jsonl", id_field="id"),
    "amc23": SuiteSpec("amc23", "amc23_test.jsonl", id_field="id"),
    "humaneval": SuiteSpec(
        "humaneval", "HumanEval.jsonl.gz",
        "Complete the following Python function. Reply with the whole function in one ```python code block.\n\n"
        "```python\n{prompt}```", answer_field="canonical_solution", verifier="code", id_field="task_id"),
    "arithmetic": SuiteSpec("arithmetic", prompt_template="What is {question}?\n" + STEP_BY_STEP, generator="arithmetic"),
    "countdown": SuiteSpec(
        "countdown", prompt_template="Using the numbers {numbers_text}, create an equation that equals {target}. "
        "You can use +, -, * and /, and each number exactly once. Show your work, then put the final "
        "equation within \\boxed{}.", answer_field="target", verifier="countdown", generator="countdown"),
}
ALIASES = {"math-500": "math500", "aime2024": "aime24", "aime2025": "aime25", "amc2023": "amc23", "aime": "aime24"}
DEFAULT_GENERATED_SIZE = 100


@dataclass
class Suite:
    spec: SuiteSpec
    items: list[dict]  # {"index", "id", "prompt", "gold", "example"}
    sha256: str  # of the suite file's bytes, or of the generated JSONL
    source: str  # the file, or "generated: arithmetic seed=0 n=100"
    problems: list[str]  # "FILE:LINE: reason" for each malformed line


def fill(template: str, record: dict) -> str:
    """`{field}` replaced by the record's value (KeyError if missing); other braces (\\boxed{}) stay."""
    return re.sub(r"\{([A-Za-z_]\w*)\}", lambda m: str(record[m.group(1)]), template)


def generate_arithmetic(n: int, seed: int) -> list[dict]:
    """3- and 4-digit addition and subtraction, 2-digit by 2-digit multiplication, mixed (r1-nano's
    target suite); the same seed gives the same list."""
    rng = random.Random(f"arithmetic-{seed}")
    records = []
    for i in range(n):
        op = rng.choice("+-*")
        if op == "*":
            a, b = rng.randint(10, 99), rng.randint(10, 99)
        else:
            a, b = (rng.randint(*rng.choice(((100, 999), (1000, 9999)))) for _ in range(2))
        value = a + b if op == "+" else a - b if op == "-" else a * b
        records.append({"id": f"arithmetic-{seed}-{i}", "question": f"{a}{op}{b}", "answer": str(value)})
    return records


def generate_countdown(n: int, seed: int) -> list[dict]:
    """TinyZero-style: 3-4 numbers in 1..99 and a target reachable by construction."""
    rng = random.Random(f"countdown-{seed}")
    records = []
    while len(records) < n:
        numbers = [rng.randint(1, 99) for _ in range(rng.choice((3, 4)))]
        value = numbers[0]
        for x in numbers[1:]:
            op = rng.choice("+-*/" if value % x == 0 else "+-*")
            value = value + x if op == "+" else value - x if op == "-" else value * x if op == "*" else value // x
        if not 1 <= value <= 999:
            continue
        shuffled = numbers[:]
        rng.shuffle(shuffled)
        records.append({"id": f"countdown-{seed}-{len(records)}", "numbers": shuffled, "target": value,
                        "numbers_text": ", ".join(map(str, shuffled))})
    return records


def find_spec(name_or_path: str) -> tuple[SuiteSpec, Path | None]:
    """(spec, folder its file is relative to). A built-in name, a spec file, or a JSONL file."""
    key = ALIASES.get(name_or_path.lower(), name_or_path.lower())
    if key in BUILT_IN:
        return BUILT_IN[key], SUITES_DIR
    path = Path(name_or_path).expanduser()
    if not path.is_file():
        raise UserError(f"unknown suite {name_or_path!r}: not a built-in ({', '.join(BUILT_IN)}) nor a file")
    if path.suffix in (".toml", ".json"):
        try:
            text = path.read_text(encoding="utf-8")
            data = tomllib.loads(text) if path.suffix == ".toml" else parse_line(text)
        except (ValueError, UnicodeDecodeError) as e:
            raise UserError(f"{path}: not a valid suite spec ({str(e).splitlines()[0]})") from None
        if not isinstance(data, dict):
            raise UserError(f"{path}: a suite spec must be a table")
        data.setdefault("name", path.stem)
        return SuiteSpec.from_dict(data), path.parent
    return SuiteSpec(path.stem.removesuffix(".jsonl"), str(path.resolve()), "{prompt}"), None


def read_records(path: Path) -> tuple[list[tuple[int, dict]], list[str], str]:
    """((line number, record) pairs, problems, sha256 of the file's bytes)."""
    try:
        data = path.read_bytes()
        text = (gzip.decompress(data) if path.suffix == ".gz" else data).decode("utf-8", errors="replace")
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise UserError(f"{path}: cannot read suite file ({e})") from None
    records, problems = [], []
    for number, record, problem in parse_lines(text.splitlines()):
        if problem:
            problems.append(f"{path}:{number}: not JSON ({problem})")
            continue
        if not isinstance(record, dict):
            problems.append(f"{path}:{number}: not a JSON object")
            continue
        records.append((number, record))
    return records, problems, hashlib.sha256(data).hexdigest()


def load_suite(name_or_path: str, limit: int | None = None, seed: int = 0) -> Suite:
    spec, base = find_spec(name_or_path)
    if spec.generator:
        n = limit or DEFAULT_GENERATED_SIZE
        records = (generate_arithmetic if spec.generator == "arithmetic" else generate_countdown)(n, seed)
        canonical = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records).encode()
        numbered = list(enumerate(records, 1))
        problems, sha, source = [], hashlib.sha256(canonical).hexdigest(), f"generated: {spec.generator} seed={seed} n={n}"
    else:
        path = Path(spec.file) if Path(spec.file).is_absolute() or base is None else base / spec.file
        numbered, problems, sha = read_records(path)
        source = str(path)
    items = []
    for number, record in numbered:
        where = f"{source}:{number}" if not spec.generator else f"{spec.name}:{number}"
        if spec.answer_field not in record and spec.verifier == "math":
            problems.append(f"{where}: no {spec.answer_field!r} field")
            continue
        try:
            prompt = fill(spec.prompt_template, record)
        except KeyError as e:
            problems.append(f"{where}: no {e.args[0]!r} field for the prompt template")
            continue
        gold = record.get(spec.answer_field)
        if spec.answer_after and isinstance(gold, str):
            gold = gold.rsplit(spec.answer_after, 1)[-1].strip()
        example = dict(record)
        if spec.verifier == "math":
            example["answer"] = gold
        example.setdefault("prompt", prompt)  # the language verifier's reference
        ident = record.get(spec.id_field) if spec.id_field else record.get("id")
        items.append({"index": len(items), "id": str(ident if ident is not None else number), "line": number,
                      "prompt": prompt, "gold": gold, "example": example})
        if limit and len(items) >= limit:
            break
    if not items:
        raise UserError(f"suite {spec.name}: no usable items in {source}" + (f" ({problems[0]})" if problems else ""))
    return Suite(spec, items, sha, source, problems)
