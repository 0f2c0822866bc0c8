"""Lightning's CSVLogger, except that a resumed run appends to its metrics.csv.

Lightning's CSV writer deletes an existing `metrics.csv` when it starts. A run resumed in
its own directory (`resume=auto`) would then keep only the rows logged after the resume,
and the history of the first part of the run would be gone. Here the writer adopts the
existing file's columns instead, so new rows are appended (and the file is rewritten with
a wider header, old rows kept, when new metrics appear). A new run never meets an existing
file: `train.py` refuses a non-empty run directory unless it is resuming.

Rows are also written out whenever a checkpoint is saved, so what a killed run had logged up
to its `last.ckpt` is on disk, and the resumed run logs the rest.
"""

from __future__ import annotations

import csv
from typing import Any

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment


class AppendingExperimentWriter(ExperimentWriter):
    def _check_log_dir_exists(self) -> None:
        if not self._fs.isfile(self.metrics_file_path):
            return
        with self._fs.open(self.metrics_file_path, "r", newline="") as handle:
            self.metrics_keys = list(next(csv.reader(handle), []))


class ResumableCSVLogger(CSVLogger):
    """`logger=csv`: metrics.csv (+ hparams.yaml) under `<run>/csv/`, kept across resumes."""

    @property
    @rank_zero_experiment
    def experiment(self) -> AppendingExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = AppendingExperimentWriter(log_dir=self.log_dir)
        return self._experiment

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        self.save()
