"""The reasoning engine. With `train` and `distributed`, the only packages that import MLX.

Layers, bottom up (each usable on its own):
- `events`, `splitter`, `prompt`, `profiles`, `protocol`: pure Python vocabulary, safe to import
  anywhere (the TUI does). `protocol` is the engine and job protocol every engine implements.
- `loader`: validates a model folder and loads it with mlx-lm (one-line errors naming the file).
- `generate.stream_reasoning`: a generator of Think/Answer/Done events on the caller's thread.
- `thread.ThreadEngine`: one long-lived thread that owns MLX; callers submit jobs and read events
  through a thread-safe `job.Job`. Use this from anything that is not itself an MLX script.
- `process.ProcessEngine`, `remote.RemoteEngine`, `scripted.ScriptedEngine`: the other engines.

Nothing is imported here so that `import workbench.engine.events` stays free of MLX.
"""
