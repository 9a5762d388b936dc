"""Chain-of-thought metrics on hand-written thinking texts with known counts (table-driven)."""

import random

import pytest

from workbench.engine.events import Stats
from workbench.inspect import Inspector, inspect_text
from workbench.inspect.consistency import consistency, extract_answer, same_answer, verify_against
from workbench.inspect.loops import LoopDetector
from workbench.inspect.markers import MarkerScanner, counts, find_markers
from workbench.inspect.steps import segment_steps
from workbench.inspect.tokens import CostSettings, costs, count_o200k, o200k

MARKER_CASES = [
    # text, expected counts (kinds not named are 0)
    ("Wait, that is wrong. Hmm. Let me check again.", {"wait": 1, "hmm": 1, "check": 1}),
    ("wait wait WAIT", {"wait": 3}),
    ("I waited and awaited; hmmm, hm.", {"hmm": 2}),
    ("But the sum is odd. It is small but positive.", {"but": 1}),
    ("Alternatively, factor it. Let's verify: ok. Let me double-check. double check", {"alternatively": 1, "check": 3}),
    ("Let me recompute: 3*4. Recalculating gives 12. Compute it again. I redo it.", {"recompute": 4}),
    ("等等，这不对。嗯，再想想。", {"wait": 1, "hmm": 1}),
    ("The weights are tight; nothing reflective here.", {}),
]


@pytest.mark.parametrize("text,expected", MARKER_CASES)
def test_marker_counts(text, expected):
    got = counts(find_markers(text))
    assert got == {k: expected.get(k, 0) for k in got}


@pytest.mark.parametrize("text,expected", MARKER_CASES)
def test_markers_found_the_same_when_streamed_in_any_chunks(text, expected):
    rng = random.Random(len(text))
    for _ in range(20):
        scanner, i = MarkerScanner(), 0
        while i < len(text):
            j = i + rng.randint(1, 5)
            scanner.feed(text[i:j])
            i = j
        scanner.finish()
        assert scanner.markers == find_markers(text)
        for start, end, kind in scanner.markers:
            assert text[start:end]  # positions point into the text


THINKING = ("Hmm, 12+30. Wait, let me check: 12+30=42.\n\nBut is that right? Let me recompute. "
            "Alternatively, 30+12=42.\n\n\nSo the answer is \\boxed{42}.")


def test_steps_split_on_paragraphs_and_sentence_opening_markers():
    steps = segment_steps(THINKING)
    assert [s["marker"] for s in steps] == ["hmm", "wait", "but", "alternatively", None]
    assert [s["title"] for s in steps] == [
        "Hmm, 12+30.", "Wait, let me check: 12+30=42.", "But is that right? Let me recompute.",
        "Alternatively, 30+12=42.", "So the answer is \\boxed{42}."]
    for s in steps:
        assert THINKING[s["start"]:s["end"]].strip() == THINKING[s["start"]:s["end"]]
    # a marker inside a sentence does not open a step
    assert len(segment_steps("I should wait for it. Then continue.")) == 1
    assert segment_steps("") == [] and segment_steps("\n\n  \n") == []


LANGUAGE_CASES = [
    # prompt, thinking, other share, flagged
    ("What is 2+2?", "Two plus two is four.", 0.0, False),
    ("What is 2+2?", "Two plus two 等于四，所以答案是四，对吧。", 11 / 21, True),
    ("What is 2+2?", "Two plus two 等于四，所以答案是四", 9 / 19, False),  # under 10 letters: not flagged
    ("What is 2+2?", "Angle θ and π and α are math, not another language.", 0.0, False),
    ("2+2等于多少？", "二加二等于四。", 0.0, False),
    ("What is 2+2?", "Ответ четыре, проверим ещё раз", 1.0, True),
    ("What is 2+2?", "a" * 200 + "是", 1 / 201, False),  # a stray character is not mixing
]


@pytest.mark.parametrize("prompt,thinking,share,flagged", LANGUAGE_CASES)
def test_language_mixing(prompt, thinking, share, flagged):
    lang = inspect_text(prompt, thinking, "")["language"]
    assert lang["other_share"] == pytest.approx(share, abs=1e-4)
    assert lang["flagged"] is flagged


LOOP = "So we add the numbers again and get the same sum as before, then check it. "


@pytest.mark.parametrize("text,loop,repeated", [
    ("First add 12 and 30. That gives 42. The answer is 42 and I am sure the answer is 42.", False, 0),
    (LOOP * 3, False, 16 - 8 + 1),  # 3 times: the 9 8-grams inside the third copy repeat; not yet stuck
    (LOOP * 12, True, None),    # the same sentence over and over
    ("\n\n".join(["Let me think about the problem again carefully."] * 3), True, None),  # a paragraph 3 times
    ("\n\n".join(["Let me think about the problem again carefully."] * 2), False, 0),
])
def test_loops(text, loop, repeated):
    detector = LoopDetector()
    detector.feed(text)
    detector.finish()
    report = detector.report()
    assert report["loop"] is loop
    if repeated is not None:
        assert report["repeated_ngrams"] == repeated
    if loop:
        assert 0 < report["loop_at"] <= len(text)


def test_loop_is_detected_while_streaming_before_the_end():
    detector = LoopDetector()
    text = LOOP * 40
    for i in range(0, len(text), 7):
        detector.feed(text[i:i + 7])
        if detector.loop:
            break
    assert detector.loop and detector.loop_at < len(text) / 2


@pytest.mark.parametrize("text,answer", [
    ("so the answer is \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}"),
    ("\\boxed{3} then \\boxed{x^{2}}", "x^{2}"),
    ("\\boxed{5} and a cut-off \\boxed{12", None),  # cut off while writing a (maybe different) answer
    ("The final answer is: 7.", "7"),
    ("we get 1,234 apples", "1,234"),
    ("no numbers here", None),
])
def test_extract_answer(text, answer):
    assert extract_answer(text) == answer


@pytest.mark.parametrize("a,b,same", [
    ("42", "42.", True), ("$42$", "42", True), ("1,234", "1234", True), ("\\frac{1}{2}", "0.5", True),
    ("\\dfrac{3}{4}", "3/4", True), ("42", "24", False), ("x+1", "x + 1", True), ("x+1", "x-1", False),
])
def test_same_answer(a, b, same):
    assert same_answer(a, b) is same


def test_consistency_between_thinking_and_answer():
    assert consistency("so 12+30=42, answer is 42", "The answer is \\boxed{42}.", verifier=False)["consistent"] is True
    assert consistency("so it is 41", "\\boxed{42}", verifier=False)["consistent"] is False
    unmarked = consistency("Hmm, 12+30. Wait, let me check: 42.", "\\boxed{42}", verifier=False)
    assert unmarked["thinking_answer"] == "42" and unmarked["consistent"] is True  # the last value it wrote
    assert consistency("no idea", "", verifier=False)["consistent"] is None


def test_gold_check_uses_a_given_verifier_and_survives_its_crash():
    class Verdict:
        def __init__(self, score, reason):
            self.score, self.reason = score, reason

    seen = []

    def verifier(completion, example):
        seen.append((completion, example["answer"]))
        return Verdict(1.0, "equal")

    assert verify_against("\\boxed{42}", "42", verifier)["score"] == 1.0 and seen == [("\\boxed{42}", "42")]
    crashed = verify_against("x", "42", lambda c, e: 1 / 0)
    assert crashed["score"] is None and "ZeroDivisionError" in crashed["reason"]  # cannot judge


def test_consistency_asks_the_verifier_only_what_comparison_cannot_settle():
    class Verdict:
        score, reason = 1.0, "equal"

    asked = []

    def verifier(completion, example):
        asked.append((completion, example["answer"]))
        return Verdict()

    assert consistency("answer is 42", "\\boxed{42.0}", verifier)["consistent"] is True and asked == []
    assert consistency("answer is 41", "\\boxed{42}", verifier)["consistent"] is False and asked == []
    c = consistency("the answer is (x+1)^2", "\\boxed{x^2+2x+1}", verifier)
    assert c["consistent"] is True and c["method"] == "math verifier"
    assert asked == [("\\boxed{x^2+2x+1}", "(x+1)^2")]


def test_consistency_with_the_real_math_verifier():
    pytest.importorskip("workbench.verify")
    c = consistency("so the answer is (x+1)^2", "\\boxed{x^2+2x+1}")
    assert c["method"] == "math verifier" and c["consistent"] is True
    assert verify_against("The answer is \\boxed{\\frac{84}{2}}.", "42")["score"] == 1.0


def test_o200k_counts_offline_and_match_known_values():
    enc = o200k()
    assert enc is not None, "the bundled o200k_base file should load without network"
    assert count_o200k("hello world") == 2
    assert enc.decode(enc.encode("Wait, let me re-check 12+30=42.")) == "Wait, let me re-check 12+30=42."
    assert count_o200k("") == 0


def test_token_accounting_and_costs():
    stats = Stats(thinking_tokens=300, answer_tokens=100, thinking_time=3.0, answer_time=1.0)
    settings = CostSettings(prices={"api": 2.0}, watts=36.0, usd_per_kwh=0.5)
    tokens = inspect_text("q", THINKING, "The answer is 42.", stats, cost_settings=settings)["tokens"]
    assert (tokens["thinking"], tokens["answer"], tokens["thinking_share"]) == (300, 100, 0.75)
    assert tokens["thinking_o200k"] == count_o200k(THINKING) and tokens["answer_o200k"] == count_o200k("The answer is 42.")
    billed = tokens["thinking_o200k"] + tokens["answer_o200k"]
    assert tokens["cost"]["hosted_usd"]["api"] == pytest.approx(billed * 2.0 / 1e6)
    assert tokens["cost"]["local_wh"] == pytest.approx(0.04) and tokens["cost"]["local_usd"] == pytest.approx(0.00002)
    # without stats, the model's tokenizer callable counts
    by_chars = inspect_text("q", "abcd", "ef", count_tokens=len, cost_settings=settings)["tokens"]
    assert (by_chars["thinking"], by_chars["answer"], by_chars["thinking_share"]) == (4, 2, 0.6667)
    assert costs(0, 0, CostSettings())["local_wh"] == 0


def test_price_table_is_editable_and_a_bad_one_is_a_clear_error(workbench_home):
    from workbench.errors import UserError

    workbench_home.mkdir(parents=True, exist_ok=True)
    (workbench_home / "prices.toml").write_text('watts = 20\n[prices]\n"my-api" = 1.5\n')
    s = CostSettings.load()
    assert s.prices == {"my-api": 1.5} and s.watts == 20
    (workbench_home / "prices.toml").write_text("[prices\n")
    with pytest.raises(UserError, match="prices.toml"):
        CostSettings.load()


def test_streamed_inspection_equals_inspection_of_the_whole_text():
    thinking = THINKING + "\n\n" + LOOP * 10 + "Ну, 等等. wait"
    whole = inspect_text("What is 12+30?", thinking, "The answer is \\boxed{42}.", cost_settings=CostSettings())
    rng = random.Random(0)
    inspector = Inspector("What is 12+30?", cost_settings=CostSettings())
    i = 0
    while i < len(thinking):
        j = i + rng.randint(1, 9)
        inspector.feed_thinking(thinking[i:j])
        i = j
    inspector.feed_answer("The answer is ")
    inspector.feed_answer("\\boxed{42}.")
    streamed = inspector.report()
    assert streamed["markers"] == whole["markers"] and streamed["steps"] == whole["steps"]
    assert streamed["language"] == whole["language"] and streamed["consistency"] == whole["consistency"]
    assert streamed["loops"]["loop"] and whole["loops"]["loop"]
    assert streamed["markers"]["counts"]["wait"] == 3


def test_hostile_text_does_not_break_inspection():
    nasty = "\x1b[31m\\boxed{" * 50 + "\ud800"[:0] + "}" * 3 + "\u202e" + "\0" * 10
    report = inspect_text("q", nasty, nasty)
    assert report["consistency"]["thinking_answer"] is not None or report["consistency"]["thinking_answer"] is None
    assert isinstance(report["steps"], list)
