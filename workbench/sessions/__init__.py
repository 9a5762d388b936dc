"""The session store (SQLite), the recorder that writes responses as they stream, exports and import."""

from workbench.sessions.store import Store

__all__ = ["Store"]
