"""Steering the thinking in the engine: continuing from a prefix of its own output with the KV cache
of the unchanged part, thinking budgets, minimum thinking, effort presets, keeping earlier thinking."""

from __future__ import annotations

import pytest

from workbench.engine.events import (BUDGET_MESSAGE, Answer, ChatRequest, Done, Failed, Message, Sampling,
                                     Steered, Think, event_to_dict, merge_deltas)
from workbench.engine.thread import ThreadEngine
from counting import run_counted, texts

QUESTION = (Message("user", "What is 12+30?"),)
GREEDY = Sampling(temperature=0.0, max_tokens=200)


@pytest.fixture(scope="module")
def engine(taught_model):
    with ThreadEngine() as engine:
        engine.load(taught_model).collect()
        yield engine


def test_continuing_from_a_prefix_reuses_the_cache_and_equals_a_run_from_scratch(engine):
    from workbench.engine.generate import PromptCache

    cache = PromptCache()
    full, fed_full = run_counted(engine, ChatRequest(QUESTION, GREEDY), cache)
    thinking, answer = texts(full)
    stats = full[-1].stats
    assert thinking.startswith("12+30") and answer == "The answer is \\boxed{42}."
    assert stats.prompt_cached_tokens == 0
    # the prompt once, then each token generated and the eos (the step generator feeds a token in
    # before it hands it out)
    assert fed_full == stats.prompt_tokens + stats.generated_tokens + 1

    edited = ChatRequest(QUESTION, GREEDY, continue_thinking=thinking[:20])
    cont, fed_cont = run_counted(engine, edited, cache)
    scratch, fed_scratch = run_counted(engine, edited, PromptCache())
    assert cont == [e for e in cont if not isinstance(e, Done)] + [cont[-1]]
    new_thinking, new_answer = texts(cont)
    assert (new_thinking, new_answer) == texts(scratch)  # greedy: the same text as from scratch
    assert thinking[:20] + new_thinking == thinking and new_answer == answer
    c, s = cont[-1].stats, scratch[-1].stats
    assert c.prompt_tokens == s.prompt_tokens == stats.prompt_tokens + 20  # one token per byte
    assert s.prompt_cached_tokens == 0
    assert c.prompt_cached_tokens == c.prompt_tokens - 1  # all of it was in the cache but the last token
    assert fed_scratch - fed_cont == c.prompt_cached_tokens  # exactly what the cache held was not recomputed


def test_an_edit_reuses_the_cache_up_to_the_first_changed_token(engine):
    from workbench.engine.generate import PromptCache

    cache = PromptCache()
    full, _ = run_counted(engine, ChatRequest(QUESTION, GREEDY), cache)
    prompt_tokens = full[-1].stats.prompt_tokens
    edited = ChatRequest(QUESTION, GREEDY, continue_thinking="12+30: ones first, THEN")
    cont, fed = run_counted(engine, edited, cache)
    scratch, _ = run_counted(engine, edited, PromptCache())
    assert cont[-1].stats.prompt_cached_tokens == prompt_tokens + len("12+30: ones first, ")
    assert texts(cont) == texts(scratch)
    # a different question shares only the template's opening with the cache
    other, _ = run_counted(engine, ChatRequest((Message("user", "Hi"),), GREEDY), cache)
    assert other[-1].stats.prompt_cached_tokens == 1  # the <|user|> token


def test_the_engine_thread_keeps_the_cache_between_requests(engine):
    thinking, _, done = engine.generate(ChatRequest(QUESTION, GREEDY)).collect()
    _, _, again = engine.generate(ChatRequest(QUESTION, GREEDY, continue_thinking=thinking[:10])).collect()
    assert again.stats.prompt_cached_tokens == again.stats.prompt_tokens - 1
    assert "cached" in again.stats.summary()


@pytest.mark.parametrize("budget", [0, 7, 25])
def test_a_budget_cuts_thinking_at_exactly_n_tokens_then_the_model_answers(engine, budget):
    events = merge_deltas(engine.generate(ChatRequest(QUESTION, GREEDY, max_thinking_tokens=budget)))
    done = events[-1]
    assert isinstance(done, Done) and done.stats.thinking_tokens == budget
    steered = [e for e in events if isinstance(e, Steered)]
    assert [(s.kind, s.text) for s in steered] == [("budget", BUDGET_MESSAGE)]
    assert isinstance(events[-2], Answer) and done.stats.answer_tokens > 0
    kinds = [type(e) for e in events[:-1]]
    assert kinds.index(Steered) == (1 if budget else 0) and kinds[-1] is Answer  # thinking, cut, answer
    assert done.stats.thinking_cut == "budget" and done.stats.thinking_closed
    assert "budget reached" in done.stats.summary()
    assert event_to_dict(steered[0]) == {"type": "steered", "kind": "budget", "text": BUDGET_MESSAGE}


def test_a_budget_above_what_the_model_thinks_changes_nothing(engine):
    plain = engine.generate(ChatRequest(QUESTION, GREEDY)).collect()
    budgeted = engine.generate(ChatRequest(QUESTION, GREEDY, max_thinking_tokens=1000)).collect()
    assert plain[:2] == budgeted[:2] and budgeted[2].stats.thinking_cut == ""


def test_minimum_thinking_turns_an_early_close_into_wait_and_thinking_goes_on(engine):
    plain = engine.generate(ChatRequest(QUESTION, GREEDY)).collect()
    request = ChatRequest(QUESTION, GREEDY, min_thinking_tokens=plain[2].stats.thinking_tokens + 10, wait_text=" Hmm")
    events = merge_deltas(engine.generate(request))
    done = events[-1]
    assert [type(e) for e in events[:3]] == [Think, Steered, Think]
    assert events[1] == Steered("wait", " Hmm", 4) and done.stats.thinking_extended >= 1
    assert events[0].text == plain[0]  # the same thinking up to the close it replaced
    assert done.stats.thinking_tokens >= request.min_thinking_tokens - 1


def test_effort_presets_are_budgets_by_model_size_and_the_profile(tmp_path):
    from workbench.engine.profiles import Profile, effort_budget
    from workbench.errors import UserError

    small, large = effort_budget(Profile(), "low", 1_500_000_000), effort_budget(Profile(), "low", 70_000_000_000)
    assert small < effort_budget(Profile(), "medium", 1_500_000_000) < effort_budget(Profile(), "high", 1_500_000_000)
    assert small < large and effort_budget(Profile(), "max", 1_000) is None
    assert effort_budget(Profile(effort={"low": 16, "max": 64}), "low", 1_000) == 16
    assert effort_budget(Profile(effort={"max": 64}), "max", 1_000) == 64
    with pytest.raises(UserError, match="unknown effort 'huge'"):
        effort_budget(Profile(), "huge")


def test_effort_sets_the_budget_and_off_fails_in_one_line_where_the_template_cannot(engine):
    from workbench.engine.profiles import effort_budget

    low = effort_budget(engine.call(lambda loaded: loaded.profile).result(), "low", engine.info.parameters)
    _, _, done = engine.generate(ChatRequest(QUESTION, GREEDY, effort="low")).collect()
    assert done.stats.thinking_tokens == min(low, 40)
    *_, failed = engine.generate(ChatRequest(QUESTION, GREEDY, effort="off")).collect()
    assert isinstance(failed, Failed) and "cannot answer without thinking" in failed.message
    assert "\n" not in failed.message


def test_effort_off_turns_thinking_off_where_the_template_can():
    from workbench.engine.prompt import build_prompt, can_turn_thinking_off

    class Template:
        chat_template = "{% if enable_thinking is false %}no{% endif %}"

        def apply_chat_template(self, messages, add_generation_prompt, tokenize, enable_thinking=True):
            return "<|user|>hi<|assistant|>" + ("" if enable_thinking else "<think>\n\n</think>\n\n")

    assert can_turn_thinking_off(Template())
    assert build_prompt(Template(), QUESTION, thinking=False).endswith("</think>\n\n")
    assert build_prompt(Template(), QUESTION).endswith("<think>\n")


def test_earlier_thinking_is_dropped_from_the_prompt_unless_kept():
    from workbench.engine.prompt import prompt_messages

    turns = (Message("user", "a"), Message("assistant", "42", thinking="because 40+2"), Message("user", "b"))
    assert prompt_messages(turns)[1]["content"] == "42"
    assert prompt_messages(turns, keep_thinking=True)[1]["content"] == "<think>\nbecause 40+2\n</think>\n\n42"


def test_answer_now_while_thinking_streams_yields_the_answer(engine):
    job = engine.generate(ChatRequest(QUESTION, GREEDY))
    job.answer_now()  # taken at the first thinking token
    events = merge_deltas(job)
    done = events[-1]
    assert isinstance(events[1], Steered) and events[1].kind == "answer_now"
    assert done.stats.thinking_tokens == 1 and done.stats.thinking_cut == "answer_now" and done.stats.answer_tokens
    assert "answered now" in done.stats.summary()


def test_requests_that_steer_say_so():
    assert not ChatRequest(QUESTION).steers
    assert ChatRequest(QUESTION, max_thinking_tokens=0).steers and ChatRequest(QUESTION, effort="low").steers
    assert ChatRequest(QUESTION, continue_thinking="x").steers and ChatRequest(QUESTION, answer_on_loop=True).steers


def test_memory_reads_in_a_unit_that_shows_it():
    from workbench.engine.events import Stats, memory_text

    assert [memory_text(g) for g in (12.345, 0.0048, 0.0000512)] == ["12.35 GB", "5 MB", "51 kB"]
    assert "peak 5 MB" in Stats(peak_memory_gb=0.0048, finish_reason="stop").summary()
