"""`workbench serve --model M [--port P] [--host H] [--token T] [--kv-bits B] [--draft D]`: an OpenAI-compatible
server on this machine (the API of `workbench cluster serve`), reusing prompt caches across requests."""

from __future__ import annotations

import os

from workbench.commands.arguments import DEFAULT_PORT, port_number, add_decoding_arguments, add_prompt_cache_argument, decoding_from_args


def add_arguments(parser) -> None:
    parser.add_argument("--model", "-m", default=None, help="model folder or name (default: r1-nano)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (beyond loopback needs --token)")
    parser.add_argument("--port", type=port_number, default=DEFAULT_PORT)
    parser.add_argument("--token", default=os.environ.get("WORKBENCH_TOKEN"),
                        help="bearer token required on every request (default: $WORKBENCH_TOKEN)")
    add_prompt_cache_argument(parser)
    add_decoding_arguments(parser)


def main(args) -> int:
    from workbench.distributed.serve import open_server
    from workbench.engine.thread import prompt_cache_setting

    gb = prompt_cache_setting(given=args.prompt_cache_gb)
    local = open_server(args.model, args.host, args.port, args.token, gb, decoding_from_args(args))
    print(f"serving {local.model_name} on {local.url} (Ctrl-C stops)", flush=True)
    try:
        local.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        local.close()
    return 0
