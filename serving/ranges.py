"""Values outside what a model was trained on, counted per feature as they are scored.

The drift job finds drift a day later from the capture; these counts show it live in
Prometheus (`mlstack_feature_out_of_range_total` beside `mlstack_batch_rows_sum`). A numeric
value is out of range below the feature's minimum or above its maximum (the metadata holds the
range the dataset declared, else the one training saw); a categorical value is when it is not
one of the feature's categories. A missing value is neither: the drift job counts those.

Counted once per model call, over the whole batch, so a request pays a share of it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mlstack_common.artifact import Feature


class RangeCheck:
    """The features that have a range, and how to count the values outside it."""

    def __init__(self, features: Sequence[Feature]) -> None:
        self.names = tuple(f.name for f in features)
        numeric = [
            (index, f)
            for index, f in enumerate(features)
            if f.type == "numeric" and (f.minimum is not None or f.maximum is not None)
        ]
        self.numeric = np.asarray([index for index, _ in numeric], dtype=np.intp)
        low = np.asarray([-np.inf if f.minimum is None else f.minimum for _, f in numeric])
        high = np.asarray([np.inf if f.maximum is None else f.maximum for _, f in numeric])
        # One comparison instead of two: |x - middle| > half-width, infinite bounds included.
        with np.errstate(invalid="ignore"):
            self.middle = np.where(np.isfinite(low + high), (low + high) / 2, 0.0)
            self.half = (high - low) / 2
        self.all_numeric = all(f.type == "numeric" for f in features)
        self.categorical = [
            (index, frozenset(f.categories))
            for index, f in enumerate(features)
            if f.type == "categorical" and f.categories
        ]
        self.checked = tuple(
            sorted({int(i) for i in self.numeric} | {i for i, _ in self.categorical})
        )
        """The indexes of the features that have a range (the others are never counted)."""

    def outside(self, rows: np.ndarray) -> dict[int, int]:
        """Per feature index, how many of `rows` lie outside its range (only the non-zero)."""
        counts: dict[int, int] = {}
        if len(self.numeric):
            block = rows if self.all_numeric else rows[:, self.numeric].astype(np.float64)
            if self.all_numeric and len(self.numeric) != rows.shape[1]:
                block = rows[:, self.numeric]
            # A missing value (NaN) compares False: never out of range. No errstate needed:
            # the middle is finite, and the codec refuses infinite values.
            flags = np.abs(block - self.middle) > self.half
            if flags.any():
                for position, count in enumerate(flags.sum(axis=0)):
                    if count:
                        counts[int(self.numeric[position])] = int(count)
        for index, categories in self.categorical:
            count = sum(
                1 for value in rows[:, index] if value is not None and value not in categories
            )
            if count:
                counts[index] = count
        return counts
