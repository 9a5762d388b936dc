"""Task suites, `workbench eval`, and report cards bound to the exact bytes of the weights.

Talks to models only through `workbench.engine.worker.Engine` and its events.
"""
