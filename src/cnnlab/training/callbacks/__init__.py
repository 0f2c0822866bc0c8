"""Every Lightning callback of the core, one file per concern."""
