"""Problem families: what is decided, how it is scored, what is feasible."""
