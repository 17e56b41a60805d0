"""Physics: pure, batched torch functions (no learning, no I/O).

Dimension letters, in this order: B setups, T small-scale realizations, L APs, K UEs, N antennas.
Channels are complex ``[B, T, L, K, N]``; gains and masks ``[B, L, K]``; per-UE values ``[B, K]``.
"""
