"""Chain-of-thought inspection: pure Python metrics for one response (see inspector.py)."""

from workbench.inspect.inspector import Inspector, inspect_text

__all__ = ["Inspector", "inspect_text"]
