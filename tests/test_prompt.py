"""Prompt building follows DeepSeek's usage notes for R1."""

import pytest

from workbench.engine.events import Message, Sampling
from workbench.engine.profiles import Profile, load_profile
from workbench.engine.prompt import build_prompt, ensure_think_prefix, opens_thinking, prompt_messages, strip_thinking
from workbench.errors import ModelLoadError


class Template:
    """A stand-in tokenizer whose chat template is R1-like (optionally adding <think>\\n itself)."""

    def __init__(self, adds_think=False):
        self.adds_think = adds_think
        self.seen = None

    def apply_chat_template(self, messages, add_generation_prompt, tokenize):
        self.seen = messages
        text = "".join(f"<|{m['role']}|>{m['content']}" for m in messages) + "<|Assistant|>"
        return text + ("<think>\n" if self.adds_think else "")


@pytest.mark.parametrize("adds_think", [False, True])
def test_generation_prompt_ends_with_one_think_tag(adds_think):
    prompt = build_prompt(Template(adds_think), [Message("user", "2+2?")])
    assert prompt.endswith("<|Assistant|><think>\n")
    assert prompt.count("<think>") == 1
    assert opens_thinking(prompt)


def test_no_system_prompt_by_default_and_history_loses_thinking():
    t = Template()
    history = [
        Message("user", "2+2?"),
        Message("assistant", "4", thinking="two and two"),
        Message("assistant", "<think>secret</think>\n\nfive"),
        Message("user", "and 3+3?"),
    ]
    build_prompt(t, history)
    assert [m["role"] for m in t.seen] == ["user", "assistant", "assistant", "user"]
    assert t.seen[1]["content"] == "4" and t.seen[2]["content"] == "five"
    assert "secret" not in str(t.seen) and "two and two" not in str(t.seen)
    assert history[1].thinking == "two and two"  # the caller keeps it


def test_profile_system_prompt_is_used_only_when_set():
    t = Template()
    build_prompt(t, [Message("user", "hi")], system_prompt="Be brief.")
    assert t.seen[0] == {"role": "system", "content": "Be brief."}


@pytest.mark.parametrize("text,expected", [
    ("<think>a</think>b", "b"),
    ("a</think>b", "b"),
    ("b<think>never closed", "b"),
    ("plain", "plain"),
    ("<think>1</think>x<think>2</think>y", "xy"),
])
def test_strip_thinking(text, expected):
    assert strip_thinking(text) == expected


def test_think_prefix_is_not_doubled():
    assert ensure_think_prefix("A<think>") == "A<think>\n"
    assert ensure_think_prefix("A<think>\n") == "A<think>\n"
    assert ensure_think_prefix("A") == "A<think>\n"
    assert not opens_thinking("<think>x</think>y")


def test_prompt_messages_keeps_user_text_verbatim():
    assert prompt_messages([Message("user", "<think>literal</think>")])[0]["content"] == "<think>literal</think>"


def test_profiles(tmp_path):
    r1 = tmp_path / "DeepSeek-R1-Distill-Qwen-1.5B-4bit"
    r1.mkdir()
    assert load_profile(r1).sampling == Sampling(temperature=0.6, top_p=0.95, max_tokens=32768)
    (r1 / "profile.toml").write_text('max_tokens = 1024\n[claims]\naime24 = 28.9\n')
    p = load_profile(r1)
    assert (p.temperature, p.max_tokens, p.claims) == (0.6, 1024, {"aime24": 28.9})
    assert Sampling(temperature=0.0).over(p.sampling) == Sampling(temperature=0.0, top_p=0.95, max_tokens=1024)
    (r1 / "profile.toml").write_text("max_tokens = [oops")
    with pytest.raises(ModelLoadError, match="profile.toml"):
        load_profile(r1)
    assert Profile.from_dict({"temperature": 0.1, "unknown": 1}).temperature == 0.1
