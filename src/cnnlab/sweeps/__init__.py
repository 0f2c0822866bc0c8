"""Sweeps and scale-out: Hydra callbacks (run-dir guard, sweep summary, k-fold mean ± std),
one GPU per parallel job, the DDP guard, and `cnnlab search` (Optuna studies with pruning)."""
