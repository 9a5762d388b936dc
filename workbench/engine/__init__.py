"""The reasoning engine. The only package (with `train` and `distributed`) that imports MLX.

Layers, bottom up (each usable on its own):
- `events`, `splitter`, `prompt`, `profiles`: pure Python, safe to import anywhere (the TUI does).
- `loader`: validates a model folder and loads it with mlx-lm (one-line errors naming the file).
- `generate.stream_reasoning`: a generator of Think/Answer/Done events on the caller's thread.
- `worker.Engine`: one long-lived thread that owns MLX; callers submit jobs and read events
  through a thread-safe channel. Use this from anything that is not itself an MLX script.

Nothing is imported here so that `import workbench.engine.events` stays free of MLX.
"""
