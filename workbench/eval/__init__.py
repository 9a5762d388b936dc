"""Task suites, `workbench eval`, and report cards bound to the exact bytes of the weights.

Talks to models only through an engine (`workbench.engine.protocol.Engine`) and its events.
"""
