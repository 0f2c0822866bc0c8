"""k-fold cross-validation splits (`data.folds=K data.fold=i`), shared by image and table data.

The rows that training may see (the official training set of an image dataset; a table's
rows left after its test split) are cut into K seeded, shuffled folds (stratified by class
for classification, with scikit-learn's StratifiedKFold / KFold); fold i is the validation
split, the other K-1 folds train. The test split never moves.
"""

from __future__ import annotations

import numpy as np

from cnnlab.errors import CnnlabError


def fold_split(
    labels: np.ndarray, folds: int, fold: int, seed: int, stratify: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) positions into `labels` for fold `fold` of `folds`."""
    from sklearn.model_selection import KFold, StratifiedKFold

    splitter = (
        StratifiedKFold(folds, shuffle=True, random_state=seed)
        if stratify
        else KFold(folds, shuffle=True, random_state=seed)
    )
    try:
        splits = list(splitter.split(np.zeros(len(labels)), labels if stratify else None))
    except ValueError as err:
        raise CnnlabError(
            f"data.folds={folds}: cannot cut {len(labels)} rows into {folds} folds ({err})"
        ) from None
    train, val = splits[fold]
    return train, val
