"""Options several commands share: which engine and model, how to sample, whether to save.

Argparse only (cheap to import): `workbench --help` reads these without importing MLX.
"""

from __future__ import annotations

DEFAULT_PORT = 8123  # `workbench serve` and `workbench cluster serve`


def port_number(text: str) -> int:
    """argparse type of --port: 0 (any free port) to 65535."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port (0 to 65535)")
    return value


def add_engine_arguments(parser) -> None:
    """Where the model runs: here (MLX), or an OpenAI-compatible server (`workbench.engine.choose.open_engine`)."""
    parser.add_argument("--endpoint", default=None, metavar="URL",
                        help="use the model an OpenAI-compatible server serves (e.g. `workbench cluster serve`) "
                        "instead of loading one here; --model then picks among the server's models; "
                        "token from $WORKBENCH_TOKEN")


def add_model_arguments(parser) -> None:
    parser.add_argument("--model", "-m", default=None, help="model folder or name (default: the embedded r1-nano)")
    parser.add_argument("--adapter", default=None, help="LoRA adapter folder (mlx-lm format)")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="allow model folders that need custom Python code (off by default)")


def add_sampling_arguments(parser) -> None:
    parser.add_argument("--temp", type=float, default=None, help="temperature (profile default: 0.6)")
    parser.add_argument("--top-p", type=float, default=None, help="nucleus sampling (profile default: 0.95)")
    parser.add_argument("--max-tokens", type=int, default=None, help="generation limit (profile default)")
    parser.add_argument("--seed", type=int, default=None, help="random seed for sampling")


def add_save_arguments(parser) -> None:
    """Options of commands that record responses (run, compare)."""
    parser.add_argument("--no-save", action="store_true", help="do not keep this response in the session store")
    parser.add_argument("--stop-on-loop", action="store_true",
                        help="stop generating when the thinking is stuck in a repetition loop")


def add_budget_arguments(parser) -> None:
    """The thinking's budgets (ChatRequest.max_thinking_tokens, min_thinking_tokens): run, the app and eval."""
    parser.add_argument("--thinking-budget", type=int, default=None, metavar="N",
                        help="at N thinking tokens the engine writes its budget message and </think>; the model answers")
    parser.add_argument("--min-thinking", type=int, default=None, metavar="N",
                        help="a </think> before N thinking tokens becomes \"Wait\" and the model thinks on")


def add_steering_arguments(parser) -> None:
    """How the thinking is steered (ChatRequest's budget fields; engines with `Capabilities.steer`)."""
    from workbench.engine.events import EFFORTS

    add_budget_arguments(parser)
    parser.add_argument("--effort", choices=EFFORTS, default=None,
                        help="a thinking budget from the model's profile (off: no thinking, where the template can)")
    parser.add_argument("--keep-thinking", action="store_true",
                        help="earlier answers keep their thinking in the prompt (default: dropped, as R1 asks)")
    parser.add_argument("--answer-on-loop", action="store_true",
                        help="thinking stuck in a repetition loop is cut and the model answers")


def add_decoding_arguments(parser) -> None:
    """How the model decodes here (ChatRequest.decoding; engines with `Capabilities.decode`)."""
    from workbench.engine.events import DRAFT_MODES

    parser.add_argument("--kv-bits", type=int, choices=(0, 4, 8), default=None,
                        help="quantize the KV cache to 4 or 8 bits: less memory for long thinking (0: fp16, the default)")
    parser.add_argument("--kv-start", type=int, default=None, metavar="N",
                        help="with --kv-bits: quantize once the cache holds N tokens (profile default: 5000)")
    parser.add_argument("--draft", default=None, metavar="MODEL",
                        help="speculative decoding with a smaller model sharing the tokenizer (`workbench models "
                        "catalog` pairs them, e.g. r1-distill-qwen-1.5b-4bit for the Qwen distills); none: no draft")
    parser.add_argument("--draft-tokens", type=int, default=None, metavar="N",
                        help="tokens the draft proposes per step (profile default: 3)")
    parser.add_argument("--draft-mode", choices=DRAFT_MODES, default=None,
                        help="auto (default): measure the first tokens with and without the draft, keep the faster")
    parser.add_argument("--context", type=int, default=None, metavar="TOKENS",
                        help="tokens the model may attend to, prompt and response (default: the model's own, "
                        "max_position_embeddings): a longer prompt is refused, the response stops where it is full")


def decoding_from_args(args):
    """The Decoding of the flags above (UserError on values out of range)."""
    from workbench.engine.events import Decoding
    from workbench.engine.profiles import decoding_problem
    from workbench.errors import UserError

    draft = args.draft
    decoding = Decoding(kv_bits=args.kv_bits, kv_start=args.kv_start,
                        draft="" if draft is not None and draft.lower() in ("none", "off", "") else draft,
                        draft_tokens=args.draft_tokens, draft_mode=args.draft_mode, context=args.context)
    problem = decoding_problem(decoding)
    if problem:
        raise UserError(problem.replace("kv_start", "--kv-start").replace("draft_tokens", "--draft-tokens")
                        .replace("context must", "--context must"))
    return decoding


def add_prompt_cache_argument(parser) -> None:
    parser.add_argument("--prompt-cache-gb", type=float, default=None, metavar="GB",
                        help="KV caches kept for later requests (default: $WORKBENCH_PROMPT_CACHE_GB or 2)")
