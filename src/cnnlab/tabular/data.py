"""Tabular data for the case study: scikit-learn's bundled datasets or any CSV file.

Why this shape:
- The table is read, checked and split once, when the model's size is first asked for
  (`model_kwargs()`, during build), so a bad CSV fails with one line before any Trainer,
  logger or checkpoint exists.
- Split: seeded, stratified by class for classification; test first, then validation from
  the rest, so the test rows do not move when `val_fraction` changes.
- Preprocessing is one scikit-learn ColumnTransformer fitted on the *training rows only*
  (no statistics leak from validation/test): numeric columns median-imputed and
  standardised, categorical columns one-hot encoded (unseen categories -> all zeros).
- The fitted transform travels with the run: `preprocessing.json` in the run dir (readable)
  and `state_dict()` in every checkpoint (the transformer itself, in scikit-learn's own
  pickle format, plus the same record), so evaluation and prediction apply the same one.
- Regression targets stay in their own units; their training-split mean/std go to the
  model (`model_kwargs`) which folds them into its output layer, so the network learns a
  standardised target while every metric and prediction is in the original units.
"""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from torch.utils.data import DataLoader, TensorDataset

from cnnlab.data.folds import fold_split
from cnnlab.errors import CnnlabError
from cnnlab.reporting.markdown import table

TASKS = ("classification", "regression")
SPLITS = ("train", "val", "test")
RECORD_FILE = "preprocessing.json"
# scikit-learn's bundled datasets (no download). Diabetes in its raw units, not the
# pre-scaled variant: standardising is this module's job, done on the training rows only.
BUILTIN: dict[str, Callable[[], Any]] = {
    "breast_cancer": lambda: load_breast_cancer(as_frame=True),
    "wine": lambda: load_wine(as_frame=True),
    "diabetes": lambda: load_diabetes(as_frame=True, scaled=False),
}
BUILTIN_TARGET = "target"
# An object column whose non-empty cells are at least this fraction numbers is a numeric
# column with typos, not a categorical one.
NUMERIC_MAJORITY = 0.5
# Stratified train/val/test needs each class in each split.
MIN_ROWS_PER_CLASS = len(SPLITS)


@dataclass
class Table:
    """A loaded table before any preprocessing; `origin` names it in every error message."""

    features: pd.DataFrame
    target: pd.Series
    origin: str
    class_names: list[str] | None = None  # the bundled datasets' names for their class codes


# -- reading -------------------------------------------------------------------------------
def load_builtin(name: str) -> Table:
    bunch = BUILTIN[name]()
    frame = bunch.frame
    names = [str(n) for n in bunch.target_names] if "target_names" in bunch else None
    return Table(
        features=frame.drop(columns=[BUILTIN_TARGET]),
        target=frame[BUILTIN_TARGET],
        origin=f"scikit-learn {name}",
        class_names=names,
    )


def read_csv(path: Path, target: str | None) -> Table:
    """A CSV file with a header row, checked for existence, emptiness and the target column."""
    if not path.is_file():
        raise CnnlabError(f"{path}: not found; data.path must name an existing CSV file")
    try:
        # round_trip: floats read back bit-identical to what was written (CSV round trips).
        frame = pd.read_csv(path, float_precision="round_trip")
    except pd.errors.EmptyDataError:
        raise CnnlabError(f"{path}: empty file; a CSV needs a header row and data rows") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
        reason = str(err).strip().splitlines()[-1]
        raise CnnlabError(f"{path}: not a readable CSV file ({reason})") from None
    columns = ", ".join(map(str, frame.columns))
    if target is None:
        raise CnnlabError(f"{path}: name the target column with data.target=<one of: {columns}>")
    if target not in frame.columns:
        raise CnnlabError(f"{path}: no column '{target}' (data.target); the columns are: {columns}")
    if frame.empty:
        raise CnnlabError(f"{path}: has a header but no data rows")
    return Table(features=frame.drop(columns=[target]), target=frame[target], origin=str(path))


def uninformative_columns(features: pd.DataFrame) -> dict[str, str]:
    """Feature columns with no information: empty in every row, or one value in every
    non-empty row. Refused rather than dropped silently: a typo in a CSV export should not
    quietly change the model's inputs. (An all-empty column would otherwise vanish inside
    the median imputer and shift every column after it.)"""
    found: dict[str, str] = {}
    for name in features.columns:
        values = features[name].dropna().unique()
        if len(values) == 0:
            found[str(name)] = "empty in every row"
        elif len(values) == 1:
            value = values[0].item() if isinstance(values[0], np.generic) else values[0]
            found[str(name)] = f"{value!r} in every row"
    return found


def first_bad_value(column: pd.Series) -> tuple[int, Any] | None:
    """(row number counted from 1, value) of the first non-empty cell that is not a number."""
    bad = column.notna() & pd.to_numeric(column, errors="coerce").isna()
    if not bad.any():
        return None
    position = int(np.flatnonzero(bad.to_numpy())[0])
    return position + 1, column.iloc[position]


def column_kinds(
    features: pd.DataFrame, origin: str, categorical: Sequence[str]
) -> tuple[list[str], list[str]]:
    """Split feature columns into numeric and categorical.

    Numeric dtypes are numeric; columns listed in `data.categorical` and text columns are
    categorical. A text column whose cells are mostly numbers is a numeric column with a
    bad value: that is an error naming the value, not a silent switch to one-hot.
    """
    numeric: list[str] = []
    cats: list[str] = []
    for name in features.columns:
        column = features[name]
        if name in categorical:
            cats.append(name)
        elif pd.api.types.is_numeric_dtype(column):
            numeric.append(name)
        else:
            filled = column.dropna()
            numbers = pd.to_numeric(filled, errors="coerce").notna().sum()
            if len(filled) and numbers / len(filled) >= NUMERIC_MAJORITY:
                row, value = first_bad_value(column)  # type: ignore[misc]
                raise CnnlabError(
                    f"{origin}: column '{name}' is numeric but data row {row} holds {value!r}; "
                    f"fix the value, or declare the column categorical: data.categorical=[{name}]"
                )
            cats.append(name)
    return numeric, cats


def encode_target(table: Table, task: str, target: str) -> tuple[np.ndarray, list[str]]:
    """Targets as class codes (classification, codes in sorted value order) or floats."""
    column = table.target
    if column.isna().any():
        row = int(np.flatnonzero(column.isna().to_numpy())[0]) + 1
        raise CnnlabError(
            f"{table.origin}: column '{target}' (the target) is empty in "
            f"{int(column.isna().sum())} row(s), first row {row}; fill or drop those rows"
        )
    if task == "regression":
        bad = first_bad_value(column)
        if bad is not None:
            raise CnnlabError(
                f"{table.origin}: column '{target}' (the target) must be numeric for "
                f"data.task=regression but row {bad[0]} holds {bad[1]!r}; fix it, or use "
                "data.task=classification"
            )
        return pd.to_numeric(column).to_numpy(dtype=np.float64), []
    values, codes = np.unique(column.to_numpy(), return_inverse=True)
    if len(values) < 2:
        raise CnnlabError(
            f"{table.origin}: column '{target}' (the target) has a single class "
            f"'{values[0]}'; classification needs at least 2"
        )
    counts = np.bincount(codes)
    if counts.min() < MIN_ROWS_PER_CLASS:
        rare = values[int(counts.argmin())]
        # Many distinct numbers: most likely a quantity meant for regression.
        numeric_target = pd.api.types.is_numeric_dtype(column) and len(values) > len(column) / 4
        raise CnnlabError(
            f"{table.origin}: column '{target}' (the target): class '{rare}' has only "
            f"{int(counts.min())} row(s); the stratified train/val/test split needs at least "
            f"{MIN_ROWS_PER_CLASS} per class: "
            + (
                "to predict it as a number use data.task=regression module=regression"
                if numeric_target
                else "add rows, or drop or merge that class"
            )
        )
    names = table.class_names or [str(v) for v in values]
    return codes.astype(np.int64), names


def split_rows(
    y: np.ndarray,
    stratify: bool,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    where: str,
    folds: int | None = None,
    fold: int | None = None,
) -> dict[str, np.ndarray]:
    """Seeded row indices per split; test first so that it depends neither on val_fraction
    nor on k-fold cross-validation (`folds`: val is fold `fold` of the other rows)."""
    rows = np.arange(len(y))
    try:
        rest, test = train_test_split(
            rows, test_size=test_fraction, random_state=seed, stratify=y if stratify else None
        )
        if folds:
            train_at, val_at = fold_split(y[rest], folds, fold or 0, seed, stratify)
            train, val = rest[train_at], rest[val_at]
        else:
            train, val = train_test_split(
                rest,
                test_size=val_fraction / (1.0 - test_fraction),
                random_state=seed,
                stratify=y[rest] if stratify else None,
            )
    except ValueError as err:
        raise CnnlabError(
            f"{where}: cannot split {len(y)} rows into train/val/test with "
            f"data.val_fraction={val_fraction}, data.test_fraction={test_fraction} ({err})"
        ) from None
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


def make_transformer(numeric: list[str], categorical: list[str]) -> ColumnTransformer:
    return ColumnTransformer(
        [
            (
                "numeric",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="median")),
                        ("standardise", StandardScaler()),
                    ]
                ),
                numeric,
            ),
            (
                "categorical",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="constant", fill_value="missing")),
                        (
                            "one_hot",
                            OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                        ),
                    ]
                ),
                categorical,
            ),
        ],
        sparse_threshold=0.0,
    )


def fitted_parameters(
    transformer: ColumnTransformer, numeric: list[str], categorical: list[str]
) -> dict[str, Any]:
    """The fitted statistics, for the human-readable record (the transformer is the truth)."""
    record: dict[str, Any] = {"numeric": {}, "categorical": {}}
    if numeric:
        steps = transformer.named_transformers_["numeric"].named_steps
        scaler, imputer = steps["standardise"], steps["impute"]
        for i, name in enumerate(numeric):
            record["numeric"][str(name)] = {
                "mean": float(scaler.mean_[i]),
                "std": float(scaler.scale_[i]),
                "median_for_missing": float(imputer.statistics_[i]),
            }
    if categorical:
        encoder = transformer.named_transformers_["categorical"].named_steps["one_hot"]
        for name, categories in zip(categorical, encoder.categories_, strict=True):
            record["categorical"][str(name)] = [str(c) for c in categories]
    return record


class TabularDataModule(L.LightningDataModule):
    """One table -> seeded train/val/test tensors through a training-fitted ColumnTransformer.

    `dataset` is one of BUILTIN or `csv` (then `path` and `target` name the file and the
    target column). `augment` is accepted and ignored: the core passes the augment group
    to every data module and table rows have no augmentation.
    """

    def __init__(
        self,
        dataset: str,
        task: str,
        path: str | os.PathLike | None = None,
        target: str | None = None,
        categorical: Sequence[str] = (),
        drop: Sequence[str] = (),
        val_fraction: float = 0.15,
        test_fraction: float = 0.2,
        split_seed: int = 0,
        batch_size: int = 64,
        eval_batch_size: int = 1024,
        num_workers: int = 0,
        augment: Any = None,
        folds: int | None = None,
        fold: int | None = None,
    ) -> None:
        super().__init__()
        if dataset != "csv" and dataset not in BUILTIN:
            raise CnnlabError(
                f"data.dataset must be csv or one of {', '.join(BUILTIN)} (got {dataset!r})"
            )
        if task not in TASKS:
            raise CnnlabError(f"data.task must be classification or regression (got {task!r})")
        if dataset == "csv" and not path:
            raise CnnlabError("data=csv needs the file: data.path=<file.csv> data.target=<column>")
        for key, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if not 0 < value < 1:
                raise CnnlabError(
                    f"data.{key} must be in (0, 1) (got {value}); e.g. data.{key}=0.2"
                )
        if val_fraction + test_fraction >= 1:
            raise CnnlabError(
                f"data.val_fraction + data.test_fraction must leave training rows "
                f"(got {val_fraction} + {test_fraction})"
            )
        if batch_size < 1 or eval_batch_size < 1:
            raise CnnlabError(f"data.batch_size must be >= 1 (got {batch_size})")
        self.dataset = dataset
        self.task = task
        self.path = Path(path).expanduser() if path else None
        self.target = target if dataset == "csv" else BUILTIN_TARGET
        self.categorical = list(categorical)
        self.drop = list(drop)
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.split_seed = split_seed
        self.folds = folds  # k-fold cross-validation of the non-test rows (val_fraction unused)
        self.fold = fold
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.name = self.path.stem if self.path else dataset
        self.origin = str(self.path) if self.path else f"scikit-learn {dataset}"  # for messages

        self._frame: pd.DataFrame | None = None  # raw features, all rows
        self._y: np.ndarray | None = None
        self._rows: dict[str, np.ndarray] = {}
        self._classes: list[str] = []
        self._numeric: list[str] = []
        self._categorical: list[str] = []
        self._transformer: ColumnTransformer | None = None
        self._tensors: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._record: dict[str, Any] | None = None
        self._test_split = "test"  # what test_dataloader serves (see test_on)

    # -- loading, checking, splitting ----------------------------------------------------
    def _load(self) -> None:
        """Read, check and split the table, and fit the transform unless a checkpoint gave one."""
        if self._frame is not None:
            return
        if self.dataset == "csv":
            assert self.path is not None
            table = read_csv(self.path, self.target)
        else:
            table = load_builtin(self.dataset)
        unknown = [c for c in [*self.drop, *self.categorical] if c not in table.features.columns]
        if unknown:
            raise CnnlabError(
                f"{table.origin}: no feature column '{unknown[0]}' (data.drop/data.categorical); "
                f"the feature columns are: {', '.join(map(str, table.features.columns))}"
            )
        features = table.features.drop(columns=self.drop)
        if features.shape[1] == 0:
            raise CnnlabError(
                f"{table.origin}: no feature columns besides the target '{self.target}'"
            )
        useless = uninformative_columns(features)
        if useless:
            listed = "; ".join(f"'{name}' is {why}" for name, why in useless.items())
            drop = ",".join([*map(str, self.drop), *useless])
            raise CnnlabError(
                f"{table.origin}: feature column(s) without information ({listed}); "
                f"drop them with data.drop=[{drop}]"
            )
        numeric, categorical = column_kinds(features, table.origin, self.categorical)
        y, classes = encode_target(table, self.task, str(self.target))
        rows = split_rows(
            y,
            stratify=self.task == "classification",
            val_fraction=self.val_fraction,
            test_fraction=self.test_fraction,
            seed=self.split_seed,
            where=f"{table.origin}: column '{self.target}'",
            folds=self.folds,
            fold=self.fold,
        )
        # One dtype per kind: floats for the scaler, Python objects (NaN kept) for the encoder.
        features = features.astype({c: np.float64 for c in numeric})
        for name in categorical:
            column = features[name]
            features[name] = column.astype(object).where(column.isna(), column.astype(str))
        self._frame, self._y, self._rows, self._classes = features, y, rows, classes
        self._numeric, self._categorical = numeric, categorical
        if self._transformer is None:
            self._transformer = make_transformer(numeric, categorical).fit(
                features.iloc[rows["train"]]
            )

    def setup(self, stage: str | None = None) -> None:
        self._load()
        trainer = self.trainer
        # The run's record of the transform (fast_dev_run writes no run artifacts).
        if (
            stage == "fit"
            and trainer is not None
            and trainer.is_global_zero
            and not trainer.fast_dev_run
        ):
            out = Path(trainer.default_root_dir)
            out.mkdir(parents=True, exist_ok=True)
            (out / RECORD_FILE).write_text(json.dumps(self.record(), indent=2) + "\n")

    # -- what the rest of the suite reads --------------------------------------------------
    @property
    def classes(self) -> list[str]:
        """Class names (classification) or [] (regression): the module checks it got its task."""
        self._load()
        return list(self._classes)

    @property
    def split_indices(self) -> dict[str, np.ndarray]:
        """Row numbers (0-based, in file order) of each split: which rows the test set holds."""
        self._load()
        return dict(self._rows)

    @property
    def num_outputs(self) -> int:
        return len(self.classes) if self.task == "classification" else 1

    def model_kwargs(self) -> dict[str, Any]:
        """Input width after one-hot, output count and, for regression, the target scale."""
        self._load()
        kwargs: dict[str, Any] = {
            "in_features": len(self._transformer.get_feature_names_out()),  # type: ignore[union-attr]
            "num_outputs": self.num_outputs,
        }
        if self.task == "regression":
            y_train = self._y[self._rows["train"]]  # type: ignore[index]
            kwargs["target_mean"] = float(y_train.mean())
            kwargs["target_std"] = float(y_train.std()) or 1.0
        return kwargs

    def _transform(self, rows: np.ndarray) -> np.ndarray:
        self._load()
        assert self._frame is not None and self._transformer is not None
        return np.asarray(self._transformer.transform(self._frame.iloc[rows]), dtype=np.float32)

    def features(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """(transformed features, targets) of one split as numpy arrays (for the baseline)."""
        self._load()
        rows = self._rows[split]
        return self._transform(rows), self._y[rows]  # type: ignore[index]

    def _split_tensors(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        if split not in self._tensors:
            x, y = self.features(split)
            y_dtype = torch.int64 if self.task == "classification" else torch.float32
            self._tensors[split] = (
                torch.from_numpy(x),
                torch.as_tensor(y, dtype=y_dtype),
            )
        return self._tensors[split]

    def summary(self) -> dict[str, Any]:
        """The dataset overview for `describe`: features and their kinds, target, steps."""
        self._load()
        y = self._y
        assert y is not None and self._frame is not None
        if self.task == "classification":
            counts = np.bincount(y, minlength=len(self._classes))
            target: dict[str, Any] = {
                "name": self.target,
                "classes": {c: int(n) for c, n in zip(self._classes, counts, strict=True)},
            }
        else:
            target = {
                "name": self.target,
                "mean": float(y.mean()),
                "std": float(y.std()),
                "min": float(y.min()),
                "median": float(np.median(y)),
                "max": float(y.max()),
            }
        frame = self._frame
        return {
            "dataset": self.name,
            "source": self.origin,
            "task": self.task,
            "rows": len(y),
            "splits": {s: len(r) for s, r in self._rows.items()},
            "split": {
                "seed": self.split_seed,
                "val_fraction": self.val_fraction,
                "test_fraction": self.test_fraction,
                "stratified": self.task == "classification",
                "folds": self.folds,
                "fold": self.fold,
            },
            "features": {
                "numeric": self._numeric,
                "categorical": {c: int(frame[c].nunique()) for c in self._categorical},
                "dropped": self.drop,
                "missing_cells": {str(c): int(n) for c, n in frame.isna().sum().items() if n},
                "inputs_after_preprocessing": self.model_kwargs()["in_features"],
            },
            "target": target,
            "preprocessing": [
                "numeric: missing -> training-split median; standardised with "
                "training-split mean/std",
                "categorical: missing -> 'missing'; one-hot over training-split "
                "categories (unseen -> all zeros)",
                *(
                    [
                        "target: in its own units; the model's output layer folds in the "
                        "training-split mean/std"
                    ]
                    if self.task == "regression"
                    else []
                ),
            ],
        }

    def describe_markdown(self) -> str:
        """`summary()` as the Markdown of `cnnlab describe data=<this option>`."""
        facts = self.summary()
        features, target, splits = facts["features"], facts["target"], facts["splits"]
        split = facts["split"]
        kinds: list[list[Any]] = [[str(c), "numeric", "standardised"] for c in features["numeric"]]
        kinds += [
            [str(c), "categorical", f"one-hot ({n} values)"]
            for c, n in features["categorical"].items()
        ]
        lines = [
            f"# Dataset: {facts['dataset']} (`data={self.dataset}`)",
            "",
            f"- Source: {facts['source']}",
            f"- Task: {facts['task']}, target column `{target['name']}`",
            f"- Rows: {facts['rows']:,}; features: {len(kinds)} "
            f"({len(features['numeric'])} numeric, {len(features['categorical'])} categorical)"
            f" -> {features['inputs_after_preprocessing']} model inputs after preprocessing",
            f"- Splits: train {splits['train']:,} / val {splits['val']:,} / "
            f"test {splits['test']:,} rows; seeded (`data.split_seed={split['seed']}`)"
            f"{', stratified by class' if split['stratified'] else ''}, test "
            f"(`data.test_fraction={split['test_fraction']}`) split off first, then val "
            + (
                f"(fold {split['fold']} of `data.folds={split['folds']}` over the other rows)"
                if split["folds"]
                else f"(`data.val_fraction={split['val_fraction']}`)"
            ),
        ]
        if features["dropped"]:
            lines.append(f"- Dropped columns: {', '.join(map(str, features['dropped']))}")
        if features["missing_cells"]:
            missing = ", ".join(f"{c} {n}" for c, n in features["missing_cells"].items())
            lines.append(f"- Missing cells: {missing}")
        lines += ["", "## Target", ""]
        if "classes" in target:
            total = sum(target["classes"].values())
            rows = [[c, n, f"{100 * n / total:.1f}"] for c, n in target["classes"].items()]
            rows.append(["**total**", total, "100.0"])
            lines.append(table(["class", "rows", "%"], rows, right=(1, 2)))
        else:
            stats = ("mean", "std", "min", "median", "max")
            lines.append(table(list(stats), [[target[k] for k in stats]], right=range(5)))
        lines += ["", "## Features", "", table(["column", "type", "preprocessing"], kinds), ""]
        lines += ["## Preprocessing (fitted on the training rows only)", ""]
        lines += [f"- {step}" for step in facts["preprocessing"]] + [""]
        return "\n".join(lines)

    def record(self) -> dict[str, Any]:
        """`summary()` plus the fitted statistics: what `preprocessing.json` holds.

        Cached: every checkpoint (each epoch's last.ckpt) carries it.
        """
        if self._record is None:
            self._load()
            assert self._transformer is not None
            self._record = {
                **self.summary(),
                "fitted": fitted_parameters(self._transformer, self._numeric, self._categorical),
            }
        return self._record

    # -- loaders ---------------------------------------------------------------------------
    def _loader(self, split: str, batch_size: int, shuffle: bool) -> DataLoader:
        return DataLoader(
            TensorDataset(*self._split_tensors(split)),
            batch_size=batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
        )

    def test_on(self, split: str) -> None:
        """Make the test loader serve `split` (`cnnlab evaluate split=val|test`)."""
        if split not in SPLITS:
            raise CnnlabError(f"split={split} is not one of {', '.join(SPLITS)}")
        self._test_split = split

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self._test_split, self.eval_batch_size, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test", self.eval_batch_size, shuffle=False)

    # -- checkpoints -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Saved in every checkpoint: the fitted transform (pickled bytes, so the checkpoint
        still loads with torch.load(weights_only=True)) and its readable record."""
        self._load()
        return {"transformer": pickle.dumps(self._transformer), "preprocessing": self.record()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Apply the checkpoint's transform instead of refitting one (tensors are rebuilt)."""
        if "transformer" in state_dict:
            self._transformer = pickle.loads(state_dict["transformer"])
            self._tensors, self._record = {}, None
