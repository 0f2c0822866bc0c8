"""Sweeps and scale-out: Hydra callbacks (run-dir guard, sweep summary) and the DDP guard."""
