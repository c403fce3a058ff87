"""The command-line tools: each a thin ``main`` over the library (shared parts in ``common``)."""
