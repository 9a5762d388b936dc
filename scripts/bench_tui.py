"""How the TUI keeps up with a fast stream, and what it costs generation. Two parts, one run.

1. Render: the app headless (App.run_test) with a scripted engine emitting >= 2,000 tokens/s for
   20,000 tokens (thinking, then a Markdown answer with math). Reports tokens/s rendered, the backlog
   (tokens emitted but not yet on screen) over the stream and at its end, and the latency of
   keypresses sent every 100 ms during the stream (sent through the headless driver like a terminal's,
   handled by an app binding). Targets: no backlog growth, p95 < 50 ms.
2. Throughput: a tiny random model (as bench_stream.py), generation tokens/s (as the engine measures
   it: request to last token) with the app open and rendering on the engine it uses (`ProcessEngine`,
   the MLX engine in a child process) versus the headless in-process `ThreadEngine` that `workbench run`
   uses, on the same model; alternating repeats, medians, ratio (target >= 0.97). Also the wall-clock
   ratio, which adds the time the app takes to draw the end of the response. `--app-engine thread`
   measures the app on the in-process Engine instead (as before ProcessEngine).

    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libopenblas.so.0 .venv/bin/python scripts/bench_tui.py [--rate 2500 --tokens 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from textual import events
from textual.binding import Binding
from textual.widgets import Input

from workbench.tui.app import WorkbenchApp
from workbench.engine.scripted import Script, ScriptedEngine

PARAGRAPH = ("Let me check the sum again: \\(12+30 = 42\\), and \\(\\frac{84}{2} = 42\\) as well, so the "
             "value is consistent. Next I consider whether \\(x^2 = 1764\\) gives \\(x = \\sqrt{1764} = 42\\). ")
ANSWER_BLOCK = (  # an R1-style answer: mostly paragraphs, a short list, some math (~700 characters a round)
    "To find the sum we add the ones and then the tens. The ones give 2 + 0 = 2 and the tens give "
    "1 + 3 = 4, so the total is 42. We can confirm it another way: subtracting gives 42 − 30 = 12, which "
    "is the first number, so the addition is right. The same result follows from \\(\\frac{84}{2} = 42\\).\n\n"
    "**Check.** Squaring, $42^2 = 1764$, and $\\sqrt{1764} = 42$, which is consistent with the value above "
    "and with the way the digits were added.\n\n"
    "- ones: 2 + 0 = 2\n- tens: 1 + 3 = 4\n\n"
    "Putting the steps together, the final answer is \\(\\boxed{42}\\), and every check agrees with it.\n\n")


class BenchApp(WorkbenchApp):
    BINDINGS = [Binding("f12", "probe", "probe", show=False)]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.probe_times: list[float] = []
        self.finished_at = None
        self.drawn = asyncio.Event()  # set when a response is all on screen (awaited, not polled)

    def action_probe(self) -> None:
        self.probe_times.append(time.perf_counter())

    def response_finished(self, response) -> None:
        super().response_finished(response)
        view = self.turn_view

        async def drawn() -> None:  # queued after the turn's writes and its finish: all on screen
            self.finished_at = time.perf_counter()
            self.drawn.set()

        view.call_next(drawn)


def synthetic_script(tokens: int, chars_per_token: int = 4) -> Script:
    """`tokens` one-token deltas: 3/4 thinking (paragraphs with LaTeX), 1/4 Markdown answer."""
    from workbench.engine.events import Answer, Think

    def pieces(block: str, n: int, kind):
        text = (block * (n * chars_per_token // len(block) + 1))[:n * chars_per_token]
        return [kind(text[i:i + chars_per_token], 1) for i in range(0, len(text), chars_per_token)]

    think = tokens * 3 // 4
    return Script(pieces(PARAGRAPH + "\n\n", think, Think) + pieces(ANSWER_BLOCK, tokens - think, Answer))


async def render_bench(rate: float, tokens: int) -> dict:
    engine = ScriptedEngine([synthetic_script(tokens)], rate=rate)
    began = []  # when the engine was asked to start (the app starts it once the new turn is drawn)
    generate = engine.generate
    engine.generate = lambda request: (began.append(time.perf_counter()), generate(request))[1]
    app = BenchApp(engine)
    async with app.run_test(size=(160, 48)) as pilot:
        while not app.ready:
            await pilot.pause(0.01)
        app.query_one("#prompt", Input).value = "What is 12+30?"
        start, cpu_start = time.perf_counter(), time.process_time()
        app._driver.send_message(events.Key("enter", "\r"))  # as a terminal would (pilot.press waits for idle)
        sent, backlog, stream_backlog, all_out = [], [], [], []
        while app.finished_at is None:
            sent.append(time.perf_counter())
            app._driver.send_message(events.Key("f12", None))
            await asyncio.sleep(0.1)
            if engine.emitted >= tokens and not all_out:
                all_out.append(time.perf_counter())  # within 0.1 s of the engine's last token
            if engine.emitted < tokens:
                backlog.append((engine.emitted, engine.emitted - app.rendered_tokens))
                stream = app.turn_view.stream if app.turn_view else None
                stream_backlog.append(sum(map(len, stream._pending)) if stream else 0)
        emitted_at = began[0] + tokens / rate  # the script is paced from its start
        end, cpu = app.finished_at, time.process_time() - cpu_start
        rendered = app.rendered_tokens
        await pilot.pause(0.2)
        latencies = sorted((t1 - t0) * 1000 for t0, t1 in zip(sent, app.probe_times)) or [float("nan")]
    quarter = [b for _, b in backlog]
    q = max(1, len(quarter) // 4)
    return {
        "rate": rate, "tokens": tokens, "rendered": rendered,
        "stream_seconds": end - start,
        "rendered_tps": rendered / (end - start),
        # CPU time of this process (UI, workers and the scripted engine) per second of stream: below 1.0
        # the app keeps up on one free core, whatever else the machine is doing.
        "cpu_per_second": cpu / (end - start), "cpu_ms_per_1000_tokens": 1e6 * cpu / tokens,
        "backlog_by_quarter": [round(statistics.mean(quarter[i:i + q])) for i in range(0, len(quarter), q)][:4],
        "backlog_max": max(quarter or [0]),
        "markdown_pending_max_chars": max(stream_backlog or [0]),
        "drain_after_last_token_ms": (end - emitted_at) * 1000,
        "enter_to_engine_ms": (began[0] - start) * 1000,
        # the scripted engine runs in this process: when the app is busy it emits late too
        "engine_late_ms": ((all_out[0] if all_out else end) - emitted_at) * 1000,
        "keypresses": len(latencies),
        "key_p50_ms": statistics.median(latencies),
        "key_p95_ms": latencies[int(0.95 * (len(latencies) - 1))],
        "key_max_ms": latencies[-1],
    }


def make_model(hidden: int, layers: int) -> Path:
    from workbench.engine.tiny import make_bench_model

    return make_bench_model(Path(tempfile.mkdtemp()) / "bench", hidden=hidden, layers=layers)


async def tui_run(engine, folder: Path, request_sampling) -> float:
    app = BenchApp(engine, model=str(folder), sampling=request_sampling)
    async with app.run_test(size=(160, 48)) as pilot:
        while not app.ready:
            await pilot.pause(0.01)
        app.query_one("#prompt", Input).value = PROMPT
        start, cpu = time.perf_counter(), time.process_time()
        app._driver.send_message(events.Key("enter", "\r"))
        await app.drawn.wait()  # polling here would itself cost the app's loop CPU while it streams
        stats = app.last.stats
        return (stats.generated_tokens / stats.total_time, stats.generated_tokens / (app.finished_at - start),
                time.process_time() - cpu)  # the app's CPU (this process: the engine is a child)


PROMPT = "Please reason step by step: what is 1234+5678?"


def throughput_bench(hidden: int, layers: int, tokens: int, repeats: int, app_engine: str = "process") -> dict:
    from workbench.engine.events import ChatRequest, Done, Sampling
    from workbench.engine.process import ProcessEngine
    from workbench.engine.thread import ThreadEngine

    folder = make_model(hidden, layers)
    sampling = Sampling(temperature=0.0, max_tokens=tokens)
    engine = ThreadEngine()
    engine.load(folder).collect()
    tui_engine = ProcessEngine() if app_engine == "process" else engine  # the app loads the model itself

    def headless() -> tuple[float, float]:
        """(tokens/s as the engine measured it, tokens/s from request to the last event read)."""
        start = time.perf_counter()
        *_, done = list(engine.generate(ChatRequest.single(PROMPT, sampling)))
        assert isinstance(done, Done), done
        return done.stats.generated_tokens / done.stats.total_time, \
            done.stats.generated_tokens / (time.perf_counter() - start)

    def tui() -> tuple[float, float, float]:
        """(tokens/s as the engine measured it, tokens/s from Enter to the response drawn, the app's
        CPU seconds from Enter to the response drawn)."""
        return asyncio.run(tui_run(tui_engine, folder, sampling))

    headless(), tui()  # warm-up
    base, mine = [], []
    for _ in range(repeats):
        base.append(headless())
        mine.append(tui())
    engine.close()
    tui_engine.close()
    med = lambda runs, i: statistics.median(r[i] for r in runs)  # noqa: E731
    return {"model": f"hidden={hidden} layers={layers}", "tokens": tokens, "repeats": repeats, "app_engine": app_engine,
            "headless_tps": med(base, 0), "tui_tps": med(mine, 0),
            "headless_runs": [r[0] for r in base], "tui_runs": [r[0] for r in mine],
            "ratio": med(mine, 0) / med(base, 0),
            # each TUI run against the headless run just before it: less swayed by load that drifts
            "paired_ratio": statistics.median(m[0] / b[0] for b, m in zip(base, mine)),
            "headless_wall_tps": med(base, 1), "tui_wall_tps": med(mine, 1),
            "wall_ratio": med(mine, 1) / med(base, 1),
            "app_cpu_ms": 1000 * statistics.median(r[2] for r in mine) if app_engine == "process" else None}


def main() -> None:
    import os

    # The app records every response as a session: keep the benchmark's out of the user's home.
    os.environ["WORKBENCH_HOME"] = tempfile.mkdtemp(prefix="bench-tui-")
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=2500, help="synthetic tokens per second")
    ap.add_argument("--tokens", type=int, default=20000)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--gen-tokens", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--app-engine", choices=("process", "thread"), default="process",
                    help="the app on ProcessEngine (what `workbench` uses) or on the in-process Engine")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--skip-render", action="store_true")
    args = ap.parse_args()

    if not args.skip_render:
        report_render(asyncio.run(render_bench(args.rate, args.tokens)))
    if not args.skip_throughput:
        t = throughput_bench(args.hidden, args.layers, args.gen_tokens, args.repeats, args.app_engine)
        print(f"throughput: {t['model']}, {t['tokens']} tokens, {t['repeats']} alternating repeats")
        print(f"  headless in-process engine: {t['headless_tps']:.1f} tok/s  (runs: {', '.join(f'{x:.0f}' for x in t['headless_runs'])})")
        print(f"  with the TUI ({t['app_engine']} engine): {t['tui_tps']:.1f} tok/s  (runs: {', '.join(f'{x:.0f}' for x in t['tui_runs'])})")
        print(f"  ratio (TUI / headless): {t['ratio']:.3f}, median of paired ratios {t['paired_ratio']:.3f}  (target >= 0.97)")
        print(f"  wall clock, request to the last token read (headless) or drawn (TUI): "
              f"{t['headless_wall_tps']:.1f} vs {t['tui_wall_tps']:.1f} tok/s, ratio {t['wall_ratio']:.3f}")
        if t["app_cpu_ms"] is not None:
            print(f"  the app's CPU per response (Enter to drawn, median): {t['app_cpu_ms']:.0f} ms")


def report_render(r: dict) -> None:
    print(f"render: {r['tokens']:,} tokens emitted at {r['rate']:,.0f} tok/s -> rendered {r['rendered']:,} "
          f"at {r['rendered_tps']:,.0f} tok/s sustained ({r['stream_seconds']:.1f} s)")
    print(f"  CPU: {r['cpu_ms_per_1000_tokens']:.0f} ms per 1,000 tokens, {r['cpu_per_second']:.2f} cores while streaming")
    print(f"  backlog (tokens emitted, not yet on screen), mean per quarter of the stream: "
          f"{r['backlog_by_quarter']}; max {r['backlog_max']}; "
          f"Markdown stream pending max {r['markdown_pending_max_chars']} chars; "
          f"last token to screen {r['drain_after_last_token_ms']:.0f} ms; Enter to the engine's start "
          f"{r['enter_to_engine_ms']:.0f} ms; the engine's last token late by <= {r['engine_late_ms']:.0f} ms")
    print(f"  keypress latency during the stream ({r['keypresses']} presses): p50 {r['key_p50_ms']:.1f} ms, "
          f"p95 {r['key_p95_ms']:.1f} ms, max {r['key_max_ms']:.1f} ms  (target p95 < 50 ms)")


if __name__ == "__main__":
    main()
