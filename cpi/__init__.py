"""The `cpi` command: the entry point above all layers (theory, sims, figures)."""
