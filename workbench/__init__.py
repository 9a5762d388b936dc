"""Reasoning Workbench: read how reasoning models think, on your own machine.

Importing this package must stay cheap: nothing here imports MLX, mlx-lm or Textual.
"""

__version__ = "0.1.0"
