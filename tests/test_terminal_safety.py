"""Model and server text is untrusted everywhere: `run`, `sessions list/show/export` (stdout and
files), the store. Escape sequences, bidi controls and lone surrogates are shown, never obeyed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.cli import build_parser
from workbench.commands import sessions as sessions_command
from workbench.engine.events import Answer, Done, ModelInfo, Sampling, Stats, Think
from workbench.sessions import Store
from workbench.sessions.export import export_html, export_markdown
from workbench.sessions.recorder import Recorder

ROOT = Path(__file__).resolve().parent.parent
OSC = "\x1b]0;pwned\x07\x1b[2J\x1b]52;c;aGk=\x07"
HOSTILE = f"{OSC} \x9b2J \u202eevil\u202c \u2066x\u2069"
RAW = ("\x1b", "\x07", "\x9b", "\u202e", "\u2066")  # none may reach a terminal or a file


def raw_in(text: str) -> list[str]:
    return [c for c in RAW if c in text]


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_SESSIONS_DB", str(tmp_path / "s.db"))
    with Store.open(tmp_path / "s.db") as s:
        yield s


def record(store, prompt, thinking, answer, model="m"):
    info = ModelInfo(name=model, path="/nowhere", model_type="x")
    with Recorder.for_prompt(store, prompt, info, Sampling()) as rec:
        rec.feed(Think(thinking))
        rec.feed(Answer(answer))
        rec.feed(Done(Stats(thinking_tokens=3, answer_tokens=2, finish_reason="stop")))
    return store.session("last")


def cli(capsys, *argv) -> str:
    assert sessions_command.main(build_parser().parse_args(["sessions", *argv])) == 0
    return capsys.readouterr().out


def test_run_shows_hostile_text_escaped_and_saves_a_lone_surrogate(tmp_path):
    """The real `run` on a scripted engine: nothing raw on stdout, and the response is saved whole
    (a lone surrogate used to crash the save and leave an empty "interrupted" session)."""
    thinking, answer = HOSTILE + " a\ud800b", HOSTILE + " 42"
    code = (
        "import sys, workbench.engine.thread as w\n"
        "from workbench.engine.scripted import ScriptedEngine, script_from_text\n"
        f"w.ThreadEngine = lambda: ScriptedEngine([script_from_text({thinking!r}, {answer!r}, chunk=3)])\n"
        "from workbench.cli import main\n"
        "sys.exit(main(['run', 'hi']))\n")
    env = {**os.environ, "WORKBENCH_HOME": str(tmp_path), "WORKBENCH_NO_OPENBLAS": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120, env=env, cwd=ROOT)
    assert out.returncode == 0, out.stderr.decode()
    text = out.stdout.decode("utf-8")
    assert raw_in(text) == [] and "\\x1b]0;pwned\\x07" in text and "\\u202eevil" in text and "42" in text
    with Store.open(tmp_path / "sessions.db") as s:
        reply = s.session("last")["turns"][1]
    assert reply["status"] == "complete" and reply["thinking"].endswith(" a\ufffdb")  # U+FFFD, same length


def test_the_recorder_stores_a_lone_surrogate_as_a_replacement_character(store):
    reply = record(store, "q", "a\ud800b", "c\udfffd")["turns"][1]
    assert (reply["thinking"], reply["content"], reply["status"]) == ("a\ufffdb", "c\ufffdd", "complete")


def test_sessions_list_escapes_a_hostile_model_id_before_cutting_it(store, capsys):
    record(store, "q " + HOSTILE, "t", "a", model="\x1b]0;" + "x" * 30 + "\x07")
    out = cli(capsys, "list")
    assert raw_in(out) == [] and "\\x1b]0;" in out
    assert "q \\x1b]0;pwned" in out  # the title too


def test_sessions_show_and_search_escape_everything(store, capsys):
    record(store, "q " + HOSTILE, "Wait " + HOSTILE, HOSTILE, model=HOSTILE)
    assert raw_in(cli(capsys, "show", "last")) == []
    assert raw_in(cli(capsys, "search", "pwned")) == []


@pytest.mark.parametrize("fmt", ["md", "html"])
def test_exports_to_stdout_and_files_hold_no_raw_control_or_bidi_characters(store, capsys, tmp_path, fmt):
    record(store, "q " + HOSTILE, "Wait " + HOSTILE, HOSTILE, model=HOSTILE)
    out = cli(capsys, "export", "last", "--format", fmt)
    assert raw_in(out) == [] and "\\x1b]52;c;aGk=\\x07" in out
    target = tmp_path / f"s.{fmt}"
    cli(capsys, "export", "last", "--format", fmt, "-o", str(target))
    data = target.read_bytes()
    assert b"\x1b" not in data and b"\x07" not in data and raw_in(data.decode("utf-8")) == []


def test_thinking_cannot_close_the_markdown_fold(store):
    thinking = "Wait.\n</details>\n\n# not a heading of the export\n<div>raw</div>\n```python\nprint(1)\n"
    md = export_markdown(record(store, "q", thinking, "The answer is 42."))
    fold = md[md.index("<details>"):]
    inside, after = fold.split("\n</details>", 1)
    assert "The answer is 42." in after and "The answer is 42." not in inside
    assert "&lt;/details&gt;" in inside and "&lt;div&gt;raw&lt;/div&gt;" in inside  # shown, not parsed
    # the thinking's unclosed code fence is closed inside the fold, so it cannot swallow the answer
    assert inside.rstrip().endswith("```")


def test_html_export_escapes_after_making_text_printable(store):
    page = export_html(record(store, "q", "Wait \x1b[31m<b>", "<script>x</script>\u202e"))
    assert "\\x1b[31m&lt;b&gt;" in page and "&lt;script&gt;x&lt;/script&gt;\\u202e" in page
    assert "<mark" in page  # markers are still marked where the text was changed before them


def test_json_outputs_escape_c1_and_bidi_characters_and_keep_the_value(store, capsys):
    """json.dumps(ensure_ascii=False) escapes ESC but writes C1 controls (\\x9b is a one-byte CSI)
    and bidi controls raw."""
    record(store, "q " + HOSTILE, "Wait " + HOSTILE, HOSTILE + "\x7f", model=HOSTILE)
    for argv in (["export", "last", "--format", "jsonl"], ["show", "last", "--json"], ["list", "--json"],
                 ["search", "pwned", "--json"]):
        out = cli(capsys, *argv)
        assert raw_in(out) == [] and "\x7f" not in out, argv
    line = json.loads(cli(capsys, "export", "last", "--format", "jsonl"))
    assert line["messages"][1]["content"] == HOSTILE + "\x7f"  # the same value, escaped in the JSON text
