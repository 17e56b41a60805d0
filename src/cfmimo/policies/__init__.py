"""Policies map a batch of problem instances to a batch of decisions (classical or neural)."""
