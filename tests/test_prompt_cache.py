"""Prompt-cache reuse across turns (`generate.PromptCache`): a chat's next turn, a regenerate, a fork from
an earlier turn and interleaved chats compute only what no kept cache holds, the output is what a run from
scratch gives, and the kept caches stay within their byte bound."""

from __future__ import annotations

import pytest

from workbench.engine.events import ChatRequest, Done, Message, Sampling
from workbench.engine.thread import ThreadEngine, prompt_cache_setting
from workbench.errors import UserError
from counting import run_counted, texts

GREEDY = Sampling(temperature=0.0, max_tokens=60)
Q1 = Message("user", "What is 12+30?")


@pytest.fixture(scope="module")
def engine(taught_model):
    """The taught model on an engine thread of this module's own (its caches start empty)."""
    engine = ThreadEngine()
    engine.load(taught_model).collect()
    yield engine
    engine.close()


def prompt_ids(engine, messages) -> list[int]:
    from workbench.engine.generate import encode_prompt
    from workbench.engine.prompt import build_prompt

    return engine.call(lambda loaded: encode_prompt(loaded.tokenizer, build_prompt(
        loaded.tokenizer, messages, force_think=loaded.profile.force_think,
        system_prompt=loaded.profile.system_prompt))).result(timeout=60)


def shared(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def turn(events, question: str):
    """The chat after a response: its answer in the history (thinking kept aside, as the app keeps it)."""
    thinking, answer = texts(events)
    return (Message("assistant", answer, thinking), Message("user", question))


def test_turn_two_reuses_the_whole_history_but_the_last_answer_and_equals_a_run_from_scratch(engine):
    from workbench.engine.generate import PromptCache

    cache = PromptCache()
    first, _ = run_counted(engine, ChatRequest((Q1,), GREEDY), cache)
    thinking, answer = texts(first)
    assert thinking and answer  # the taught model thinks, then answers
    chat = (Q1, *turn(first, "And 30+12?"))
    second, fed = run_counted(engine, ChatRequest(chat, GREEDY), cache)
    scratch, fed_scratch = run_counted(engine, ChatRequest(chat, GREEDY), PromptCache())
    # the default rule drops turn 1's thinking: the history up to where its answer starts is reused
    expected = shared(prompt_ids(engine, (Q1,)), prompt_ids(engine, chat))
    stats = second[-1].stats
    assert expected > len("What is 12+30?")
    assert stats.prompt_cached_tokens == expected and scratch[-1].stats.prompt_cached_tokens == 0
    assert fed_scratch - fed == expected  # exactly those were not computed again
    assert texts(second) == texts(scratch)  # greedy: the same as without reuse
    assert stats.prompt_tokens - stats.prompt_cached_tokens < len(answer) + 40  # the answer, the new question


def test_regenerate_and_a_fork_from_an_earlier_turn_reuse_their_caches(engine):
    from workbench.engine.generate import PromptCache

    cache = PromptCache()
    first, _ = run_counted(engine, ChatRequest((Q1,), GREEDY), cache)
    chat = (Q1, *turn(first, "And 30+12?"))
    second, _ = run_counted(engine, ChatRequest(chat, GREEDY), cache)
    third, _ = run_counted(engine, ChatRequest((*chat, *turn(second, "Why?")), GREEDY), cache)

    again, fed = run_counted(engine, ChatRequest(chat, GREEDY), cache)  # regenerate turn 2
    assert again[-1].stats.prompt_cached_tokens == again[-1].stats.prompt_tokens - 1
    assert fed == again[-1].stats.generated_tokens + 2  # the last prompt token, each token, the eos
    assert texts(again) == texts(second)

    # fork: turn 1's thinking edited, after two later turns; its cache was kept beside theirs
    thinking, _ = texts(first)
    fork = ChatRequest((Q1,), GREEDY, continue_thinking=thinking[:12] + "X")
    forked, fed_fork = run_counted(engine, fork, cache)
    scratch, fed_scratch = run_counted(engine, fork, PromptCache())
    prompt_tokens = len(prompt_ids(engine, (Q1,)))
    assert forked[-1].stats.prompt_cached_tokens == prompt_tokens + 12
    assert fed_scratch - fed_fork == prompt_tokens + 12
    assert texts(forked) == texts(scratch)
    # fork: a different follow-up to turn 1 reuses turn 2's history up to where the questions differ
    other = (*chat[:2], Message("user", "And 12+31?"))
    branched, _ = run_counted(engine, ChatRequest(other, GREEDY), cache)
    assert branched[-1].stats.prompt_cached_tokens == shared(prompt_ids(engine, chat), prompt_ids(engine, other))
    assert isinstance(third[-1], Done)


def test_interleaved_chats_each_reuse_their_own_history(engine):
    """Two clients of one server: each chat's next turn finds its own cache, not just the latest one."""
    from workbench.engine.generate import PromptCache

    cache = PromptCache()
    a1, _ = run_counted(engine, ChatRequest((Q1,), GREEDY), cache)
    b1, _ = run_counted(engine, ChatRequest((Message("user", "Name a prime."),), GREEDY), cache)
    chat_a = (Q1, *turn(a1, "And 30+12?"))
    a2, _ = run_counted(engine, ChatRequest(chat_a, GREEDY), cache)
    assert a2[-1].stats.prompt_cached_tokens == shared(prompt_ids(engine, (Q1,)), prompt_ids(engine, chat_a))
    chat_b = (Message("user", "Name a prime."), *turn(b1, "Another?"))
    b2, _ = run_counted(engine, ChatRequest(chat_b, GREEDY), cache)
    assert b2[-1].stats.prompt_cached_tokens == shared(prompt_ids(engine, chat_b[:1]), prompt_ids(engine, chat_b))


def test_kept_caches_stay_within_their_bytes_least_recently_used_first(engine):
    from workbench.engine.generate import PromptCache

    probe = PromptCache()
    run_counted(engine, ChatRequest((Q1,), GREEDY), probe)
    one = probe.nbytes  # one chat's cache
    cache = PromptCache(max_bytes=int(one * 1.5))  # room for one kept cache besides the latest: not two
    questions = ["What is 12+30?", "Name a prime.", "Say hi."]
    for q in questions:
        run_counted(engine, ChatRequest((Message("user", q),), GREEDY), cache)
        assert len(cache.kept) == 1 or cache.nbytes <= cache.max_bytes
    assert [k.tokens for k in cache.kept] != [] and len(cache.kept) < len(questions)
    # the most recent one is still there
    last, _ = run_counted(engine, ChatRequest((Message("user", questions[-1]),), GREEDY), cache)
    assert last[-1].stats.prompt_cached_tokens == last[-1].stats.prompt_tokens - 1
    # the first chat's cache went first: its next turn shares only the template's opening
    first, _ = run_counted(engine, ChatRequest((Message("user", questions[0]),), GREEDY), cache)
    assert first[-1].stats.prompt_cached_tokens == 1  # the <|user|> token
    # a bound of 0 keeps only the latest generation's cache (a steered generation goes on from it)
    latest = PromptCache(max_bytes=0)
    for q in questions[:2]:
        run_counted(engine, ChatRequest((Message("user", q),), GREEDY), latest)
    assert len(latest.kept) == 1


def test_the_engine_keeps_caches_per_its_setting(taught_model):
    with ThreadEngine(prompt_cache_gb=0) as engine:
        engine.load(taught_model).collect()
        chats = [(Message("user", q),) for q in ("What is 12+30?", "Name a prime.")]
        for chat in chats:
            engine.generate(ChatRequest(chat, GREEDY)).collect()
        *_, done = engine.generate(ChatRequest(chats[0], GREEDY)).collect()
        assert done.stats.prompt_cached_tokens == 1  # only the latest chat was kept
    with ThreadEngine() as engine:
        engine.load(taught_model).collect()
        for chat in chats:
            engine.generate(ChatRequest(chat, GREEDY)).collect()
        *_, done = engine.generate(ChatRequest(chats[0], GREEDY)).collect()
        assert done.stats.prompt_cached_tokens == done.stats.prompt_tokens - 1


@pytest.mark.parametrize("value, expected", [("", 2.0), ("0", 0.0), ("0.5", 0.5)])
def test_the_setting_reads_gb(value, expected):
    assert prompt_cache_setting({"WORKBENCH_PROMPT_CACHE_GB": value}) == expected


@pytest.mark.parametrize("value", ["lots", "-1", "nan", "inf"])
def test_a_bad_setting_is_one_line_naming_it(value):
    with pytest.raises(UserError, match=r"WORKBENCH_PROMPT_CACHE_GB must be a number of GB"):
        prompt_cache_setting({"WORKBENCH_PROMPT_CACHE_GB": value})


def test_the_reused_tokens_are_recorded_with_the_session(engine, tmp_path):
    from workbench.sessions import Store
    from workbench.sessions.recorder import Recorder

    with Store.open(tmp_path / "s.db") as store:
        recorder = Recorder.for_prompt(store, Q1.content, engine.info, GREEDY)
        with recorder:
            first = list(recorder.follow(engine.generate(ChatRequest((Q1,), GREEDY))))
        chat = (Q1, *turn(first, "And 30+12?"))
        store.add_turn(recorder.session_id, "user", "And 30+12?")
        with Recorder(store, recorder.session_id, "And 30+12?", engine.info, GREEDY) as second:
            *_, done = second.follow(engine.generate(ChatRequest(chat, GREEDY))).collect()
        stored = store.session(recorder.session_id)["turns"][-1]["stats"]
    assert done.stats.prompt_cached_tokens > len(Q1.content)
    assert stored["prompt_cached_tokens"] == done.stats.prompt_cached_tokens
    assert stored["prompt_tokens"] == done.stats.prompt_tokens
