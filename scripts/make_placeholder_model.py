"""Write the placeholder embedded model `models/r1-nano` (until scripts/train_nano.py trains the real one).

A ~80k-parameter Qwen2 with a character-level tokenizer, taught a few worked additions so that it
thinks inside <think> and answers with \\boxed{}. Deterministic: same bytes every run.
"""

import json
import shutil
import sys
from pathlib import Path

from workbench.engine.tiny import make_tiny_model, teach


def worked(a: int, b: int) -> str:
    return f"{a}+{b}: add the ones, then the tens. {a}+{b}={a + b}.</think>The answer is \\boxed{{{a + b}}}."


out = Path(sys.argv[1] if len(sys.argv) > 1 else "models/r1-nano")
shutil.rmtree(out, ignore_errors=True)
make_tiny_model(out, seed=0, hidden=96, layers=2)
pairs = [(12, 30), (25, 17), (40, 2), (7, 8), (33, 44), (19, 21), (50, 50), (61, 9)]
loss = teach(out, [(f"What is {a}+{b}?", worked(a, b)) for a, b in pairs], steps=400)
(out / "profile.toml").write_text("# a tiny model: greedy decoding reads best\ntemperature = 0.0\nmax_tokens = 400\n")
(out / "README.md").write_text("Placeholder r1-nano: made by scripts/make_placeholder_model.py "
                               f"(memorised worked additions, final loss {loss:.4f}).\n")
print(json.dumps({"model": str(out), "loss": loss}))
