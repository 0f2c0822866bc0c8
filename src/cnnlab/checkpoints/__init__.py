"""Checkpoint files and run state: atomic IO, the one checkpoint reader, resume, and the
CSV logger that survives a resume."""
