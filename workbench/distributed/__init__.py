"""Several machines as one with MLX's own distributed engine (`mlx.launch`, ring/MPI/JACCL).

- `hostfile.py`: the `mlx.launch` hostfile, per-host checks (behind an ssh seam), layer splits.
- `pipeline.py`: pipeline parallelism for Qwen2/Llama-style models by wrapping their layers.
- `shard.py`: load a model folder sharded over a group (pipeline or tensor parallel).
- `deadline.py`: collectives with a deadline; naming the lost host.
- `rank.py`: the program each rank runs (`python -m workbench.distributed.rank`).
- `local.py`: `--local-ranks N`: the ranks on this machine, started without `mlx.launch`. No MLX.
- `server.py`: the OpenAI-compatible HTTP server rank 0 runs (pure Python).
"""
