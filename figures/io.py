"""Load saved results for figures: tidy CSV tables and JSON metadata, nothing else.

Figures never import the code that wrote the results (bandit/, llm/); they read the files, so a
figure can be redrawn from a results directory on any machine. `Table` is a minimal column store
(numpy arrays by column name) with filtering, enough for load -> statistic -> draw.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from labkit.io import read_table
from labkit.lad import advantage_distribution


@dataclass
class Table:
    """Columns of equal length; numeric columns as float arrays, the rest as str arrays."""

    columns: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self.columns[name]
        except KeyError:
            raise ValueError(
                f"column {name!r} is not in the table; it has {sorted(self.columns)}"
            ) from None

    def where(self, **equal: Any) -> Table:
        """Rows whose columns equal the given values (numbers compared as floats)."""
        keep = np.ones(len(self), dtype=bool)
        for name, value in equal.items():
            col = self[name]
            keep &= np.isclose(col, float(value)) if col.dtype.kind == "f" else (col == str(value))
        return Table({k: v[keep] for k, v in self.columns.items()})

    def unique(self, name: str) -> list[Any]:
        """Distinct values of a column in order of first appearance."""
        seen: dict[Any, None] = {}
        for v in self[name].tolist():
            seen.setdefault(v, None)
        return list(seen)


def read_csv(path: str | Path, keep_str: Iterable[str] = ()) -> Table:
    """A tidy CSV as a Table (labkit.io.read_table: numbers as floats, keep_str as str)."""
    return Table(read_table(path, keep_str))


def read_json(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"results file {str(path)!r} does not exist")
    return json.loads(path.read_text())


@dataclass
class BanditData:
    """A bandit results directory: metrics (one row per run x logged step), policies (one row
    per run x saved step x arm) and the metadata (config, landscape, runs, versions)."""

    path: Path
    meta: dict[str, Any]
    metrics: Table
    policies: Table

    @property
    def config(self) -> dict[str, Any]:
        return self.meta["config"]

    @property
    def rewards(self) -> np.ndarray:
        return np.asarray(self.meta["landscape"]["rewards"], dtype=float)

    @property
    def modes(self) -> list[list[int]]:
        return self.meta["landscape"]["modes"]

    def target(self, eta: float = 1.0) -> np.ndarray:
        """P_A (K,) at temperature eta."""
        return advantage_distribution(torch.as_tensor(self.rewards), eta).exp().numpy()


STR_COLUMNS = ("objective", "divergence")


def load_bandit(path: str | Path) -> BanditData:
    """Read metrics.csv, policies.csv and config.json of a bandit results directory."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"{str(path)!r} holds no bandit results (config.json missing); run the experiment first"
        )
    meta = read_json(path / "config.json")
    return BanditData(
        path,
        meta,
        read_csv(path / "metrics.csv", STR_COLUMNS),
        read_csv(path / "policies.csv", STR_COLUMNS),
    )
