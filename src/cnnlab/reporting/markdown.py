"""Markdown tables shared by every written report (per-class table, describe, report)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def cell(value: Any, digits: int = 4) -> str:
    """One table cell: floats rounded, None as an em dash, pipes escaped."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[int] = ()) -> str:
    """A GitHub-flavoured Markdown table; columns listed in `right` are right-aligned."""
    for row in rows:
        if len(row) != len(headers):
            raise ValueError(f"table row has {len(row)} cells for {len(headers)} columns: {row}")
    lines = [
        "| " + " | ".join(cell(h) for h in headers) + " |",
        "|" + "|".join("---:" if i in right else "---" for i in range(len(headers))) + "|",
    ]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def per_class_table(
    per_class: Mapping[str, Mapping[str, float]], support: Sequence[int] | None = None
) -> str:
    """Precision / recall / F1 per class (+ support when known), then the macro average."""
    headers = ["class", "precision", "recall", "f1"] + (["support"] if support is not None else [])
    rows: list[list[Any]] = []
    for i, (name, values) in enumerate(per_class.items()):
        row: list[Any] = [name, values["precision"], values["recall"], values["f1"]]
        if support is not None:
            row.append(int(support[i]))
        rows.append(row)
    if per_class:
        count = len(per_class)
        macro: list[Any] = ["**macro average**"] + [
            sum(v[m] for v in per_class.values()) / count for m in ("precision", "recall", "f1")
        ]
        if support is not None:
            macro.append(int(sum(support)))
        rows.append(macro)
    return table(headers, rows, right=range(1, len(headers)))
