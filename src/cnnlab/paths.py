"""Where the repository, its configs and its outputs are.

The package is installed editable (`make setup`), so the repository root is two levels
above this file; `CNNLAB_ROOT` overrides that for unusual layouts.
"""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf

REPO_ROOT = Path(os.environ.get("CNNLAB_ROOT", Path(__file__).resolve().parents[2]))
CONFIG_DIR = REPO_ROOT / "conf"


def register_resolvers() -> None:
    """Register `${cnnlab.root:}` so configs can name the repo without hard-coding it."""
    if not OmegaConf.has_resolver("cnnlab.root"):
        OmegaConf.register_new_resolver("cnnlab.root", lambda: str(REPO_ROOT))
