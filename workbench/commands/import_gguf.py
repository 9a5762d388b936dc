"""`workbench import PATH.gguf`: a GGUF file (llama.cpp, Ollama, LM Studio) becomes an MLX model folder."""

from __future__ import annotations


def add_arguments(parser) -> None:
    parser.add_argument("path", metavar="PATH.gguf", help="the GGUF file")
    parser.add_argument("--name", default=None, help="folder name in your models directory (default: from the file name)")
    parser.add_argument("--bits", type=int, choices=(4, 8), default=None,
                        help="bits for tensors that get requantized (K-quants, Q5_*, IQ*...; default: 8 for 5/6-bit types, "
                             "else 4) and for float matrices (default: kept as floats); Q4_0/Q4_1/Q8_0 stay as they are")
    parser.add_argument("--force", action="store_true", help="replace an existing model of that name")


def main(args) -> int:
    from workbench.models.gguf_import import import_gguf

    folder = import_gguf(args.path, name=args.name, bits=args.bits, force=args.force, log=print)
    print(f"imported {folder.name} -> {folder}")
    return 0
