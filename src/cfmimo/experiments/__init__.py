"""Paper reproductions: one module per paper (config with the paper's numbers, run, figures, claims)."""
