"""The Textual app: thinking and answer side by side, streamed live.

The only package that imports textual (tests/test_import_hygiene.py keeps it so). It never calls
MLX: it talks to an engine object (`load`, `generate`, `info`, `close`; workbench.engine.protocol.Engine).
`latex.py` is pure Python; `app.py`, the screens and the widgets import textual (the scripted engine the
tests drive the app with is `workbench.engine.scripted`).
"""
