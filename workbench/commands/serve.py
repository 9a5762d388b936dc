"""`workbench serve --model M [--port P] [--host H] [--token T]`: an OpenAI-compatible server on this
machine (the API of `workbench cluster serve`), reusing prompt caches across requests."""

from __future__ import annotations

import os

from workbench.commands.arguments import DEFAULT_PORT


def add_arguments(parser) -> None:
    parser.add_argument("--model", "-m", default=None, help="model folder or name (default: r1-nano)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (beyond loopback needs --token)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--token", default=os.environ.get("WORKBENCH_TOKEN"),
                        help="bearer token required on every request (default: $WORKBENCH_TOKEN)")
    parser.add_argument("--prompt-cache-gb", type=float, default=None, metavar="GB",
                        help="KV caches kept for later requests (default: $WORKBENCH_PROMPT_CACHE_GB or 2)")


def main(args) -> int:
    from workbench.distributed.serve import open_server
    from workbench.errors import UserError

    if args.prompt_cache_gb is not None and not 0 <= args.prompt_cache_gb < 1e6:
        raise UserError(f"--prompt-cache-gb must be 0 or more (it is {args.prompt_cache_gb})")
    local = open_server(args.model, args.host, args.port, args.token, args.prompt_cache_gb)
    print(f"serving {local.model_name} on {local.url} (Ctrl-C stops)", flush=True)
    try:
        local.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        local.close()
    return 0
