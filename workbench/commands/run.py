"""`workbench run "PROMPT"`: one response, streamed to stdout (thinking, answer, stats)."""

from __future__ import annotations

import contextlib
import json
import signal
import sys

from workbench.commands.arguments import (
    add_decoding_arguments, add_engine_arguments, add_model_arguments, add_sampling_arguments, add_save_arguments,
    add_steering_arguments, decoding_from_args,
)
from workbench.errors import UserError
from workbench.terminal import printable  # model output is untrusted: escapes are shown, not obeyed

QUICK_EXIT = True  # the process ends when the response is saved and printed (cli.quick_exit)


def add_arguments(parser) -> None:
    parser.add_argument("prompt", nargs="?", default=None,
                        help="the prompt, or - to read it from stdin (not with --continue)")
    add_engine_arguments(parser)
    add_model_arguments(parser)
    add_sampling_arguments(parser)
    add_steering_arguments(parser)
    add_decoding_arguments(parser)
    parser.add_argument("--continue", dest="continue_from", default=None, metavar="SESSION:TURN",
                        help="answer again from a saved response (its turn id from `sessions show`): a new branch")
    parser.add_argument("--thinking-file", default=None, metavar="F",
                        help="with --continue: the thinking to continue from (default: the response's own)")
    parser.add_argument("--json", action="store_true", help="one JSON event per line: think, answer, done")
    add_save_arguments(parser)


def sampling_from_args(args):
    from workbench.engine.events import Sampling

    return Sampling(temperature=args.temp, top_p=args.top_p, max_tokens=args.max_tokens, seed=args.seed)


class Printer:
    """Thinking dimmed under a header, then the answer, then one stats line (plain text when piped)."""

    def __init__(self, stream=sys.stdout) -> None:
        self.out = stream
        self.tty = stream.isatty()
        self.phase = None

    def _style(self, code: str) -> str:
        return f"\x1b[{code}m" if self.tty else ""

    def write(self, event) -> None:
        from workbench.engine.events import Answer, Done, Steered, Think

        if isinstance(event, (Think, Steered)):
            if self.phase != "think":
                self.out.write(f"{self._style('1')}Thinking{self._style('0')}\n{self._style('2')}")
                self.phase = "think"
            if isinstance(event, Steered):  # the engine's words, not the model's: marked
                self.out.write(f"{self._style('0;7')}[{event.kind}]{self._style('0;2')}{printable(event.text)}"
                               f"{self._style('0;7')}[/{event.kind}]{self._style('0;2')}")
            else:
                self.out.write(printable(event.text))
        elif isinstance(event, Answer):
            if self.phase != "answer":
                sep = "\n\n" if self.phase else ""
                self.out.write(f"{self._style('0')}{sep}{self._style('1')}Answer{self._style('0')}\n")
                self.phase = "answer"
            self.out.write(printable(event.text))
        elif isinstance(event, Done):
            self.out.write(f"{self._style('0')}\n\n{self._style('2')}[{event.stats.summary()}]{self._style('0')}\n")
        self.out.flush()


def recorder_for_run(args, prompt: str, info, continued=None):
    """The recorder of `workbench run` (or a no-op with --no-save). `continued`: a Continuation, recorded as
    a new branch of its session."""
    import sqlite3

    from workbench.sessions.recorder import NoRecorder, Recorder
    from workbench.sessions.store import Store, problem

    if args.no_save:
        return NoRecorder()
    store = Store.open()
    try:
        if continued is None:
            recorder = Recorder.for_prompt(store, prompt, info, sampling_from_args(args))
        else:
            recorder = Recorder(store, continued.session_id, prompt, info, sampling_from_args(args),
                                parent_id=continued.parent_id, thinking_prefix=continued.thinking)
    except sqlite3.Error as e:  # locked past the busy timeout, a full disk, ...
        store.close()
        raise UserError(problem(store.path, e, "write to")) from None
    return recorder  # its store is left to the process's exit (`stream`)


def steering_from_args(args) -> dict:
    """ChatRequest fields of the steering flags."""
    for flag, value in (("--thinking-budget", args.thinking_budget), ("--min-thinking", args.min_thinking)):
        if value is not None and value < 0:
            raise UserError(f"{flag} must be 0 or more, not {value}")
    return {"max_thinking_tokens": args.thinking_budget, "min_thinking_tokens": args.min_thinking,
            "effort": args.effort, "keep_thinking": args.keep_thinking, "answer_on_loop": args.answer_on_loop}


def main(args) -> int:
    from workbench.engine.choose import open_engine, refuse_decoding
    from workbench.engine.events import ChatRequest, Failed, Message

    continued = None
    if args.continue_from:
        from workbench.sessions.continuation import continuation

        if args.prompt is not None:
            raise UserError("--continue answers a saved prompt again: give no PROMPT with it")
        continued = continuation(args.continue_from, args.thinking_file)
        messages, prompt = continued.messages, continued.messages[-1].content
    else:
        if args.thinking_file:
            raise UserError("--thinking-file goes with --continue SESSION:TURN")
        if args.prompt is None:
            raise UserError("give a PROMPT (or - to read it from stdin), or --continue SESSION:TURN")
        prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
        messages = (Message("user", prompt),)
    steering = steering_from_args(args)
    decoding = decoding_from_args(args)
    engine = open_engine(args.endpoint)
    job = None
    try:
        refuse_decoding(engine, decoding, args.endpoint)
        _, _, loaded = engine.load(args.model, args.adapter, args.trust_remote_code).collect()
        if isinstance(loaded, Failed):  # server text: shown, not obeyed
            print(f"workbench: error: {printable(loaded.message)}", file=sys.stderr)
            return 2
        request = ChatRequest(messages, sampling_from_args(args), stop_on_loop=args.stop_on_loop,
                              continue_thinking=continued.thinking if continued else None, decoding=decoding,
                              **steering)
        if request.steers and not engine.capabilities.steer:
            raise UserError(f"{args.endpoint or 'this engine'} cannot steer the thinking (budgets, effort, "
                            f"--continue, --answer-on-loop): drop those options, or run the model here")
        job = engine.generate(request)
        return stream(args, prompt, engine.info, job, continued)
    finally:
        if job is not None:
            job.cancel()  # a no-op once it has ended
        engine.close()  # its thread must end before the interpreter does, or MLX aborts the process


def stream(args, prompt: str, info, job, continued=None) -> int:
    """Print the job's events and record them; an unusable store costs the saving, not the answer."""
    from workbench.engine.events import Done, Failed, Think, event_to_dict
    from workbench.sessions.recorder import NoRecorder, Recorder

    printer = Printer()
    status, unsaved = 0, False
    if continued is not None and continued.thinking:  # the thinking it goes on from, then what is new
        if args.json:
            print(json.dumps({"type": "continued", "text": continued.thinking}), flush=True)
        else:
            printer.write(Think(continued.thinking))
    try:
        recorder = recorder_for_run(args, prompt, info, continued)
    except UserError as e:
        print(f"workbench: warning: {e}; this response is not saved (--no-save skips saving)", file=sys.stderr)
        recorder, unsaved = NoRecorder(), True
    with stop_on_ctrl_c(job), recorder:
        try:
            for event in recorder.follow(job):
                if isinstance(event, Failed):
                    print(f"workbench: error: {printable(event.message)}", file=sys.stderr)
                    status = 1
                elif args.json:
                    print(json.dumps(event_to_dict(event)), flush=True)
                else:
                    printer.write(event)
                if isinstance(event, Done) and event.stats.finish_reason == "cancelled":
                    status = 130
        except UserError as e:  # the store failed as the response ended: what was written before is kept
            print(f"workbench: warning: {e}", file=sys.stderr)
            unsaved = True
    if isinstance(recorder, Recorder):
        if getattr(args, "exiting", False):  # the process ends now (QUICK_EXIT): no checkpoint after the answer
            recorder.store.leave_to_exit()
        else:  # a caller that goes on (cli.main without exit_process)
            recorder.store.close()
    return status or (1 if unsaved else 0)


@contextlib.contextmanager
def stop_on_ctrl_c(job):
    """First Ctrl-C stops generation (the stats still print); a second one quits at once."""
    def handler(signum, frame):
        if job.stop_reason():
            raise KeyboardInterrupt
        job.cancel("cancelled")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
