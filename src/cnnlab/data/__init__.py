"""Data modules: one LightningDataModule per data family, reading the canonical files."""
