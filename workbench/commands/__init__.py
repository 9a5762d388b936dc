"""One module per `workbench` subcommand: `add_arguments(parser)` (cheap) and `main(args) -> int`."""
