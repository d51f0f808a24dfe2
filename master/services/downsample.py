"""Server-side downsampling of metric series with M4 (first, last, min and max per bin)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from tsdownsample import M4Downsampler

_M4 = M4Downsampler()


def m4_keep(steps: np.ndarray, values: np.ndarray, max_points: int) -> np.ndarray:
    """Sorted positions (into the inputs) of at most ``max_points`` points that keep the
    series' shape: the first and last point by step and the global minimum and maximum."""
    n = len(steps)
    if n <= max_points:
        return np.arange(n)
    order = np.argsort(steps, kind="stable")  # M4 needs x ascending; reports may arrive unsorted
    # M4 already contains these (extremes of their bins); listed to make the promise explicit.
    must = np.array([0, n - 1, int(np.argmin(values[order])), int(np.argmax(values[order]))])
    if max_points < 8:  # room for one bin only, which is exactly these four
        return np.unique(order[must])
    n_out = max_points - max_points % 4  # M4 emits 4 points per bin
    picked = _M4.downsample(steps[order], values[order], n_out=n_out).astype(np.int64)
    return np.unique(order[np.concatenate([picked, must])])


def downsample_rows(rows: Sequence[Any], max_points: int) -> list[Any]:
    """Downsample each (name, rank) series of ``rows`` (objects with name, rank, step, value);
    the rows kept come back in their original order."""
    series: dict[tuple[str, int], list[int]] = {}
    for position, row in enumerate(rows):
        series.setdefault((row.name, row.rank), []).append(position)
    keep: list[int] = []
    for positions in series.values():
        if len(positions) <= max_points:
            keep.extend(positions)
            continue
        steps = np.fromiter((rows[p].step for p in positions), dtype=np.int64, count=len(positions))
        values = np.fromiter(
            (rows[p].value for p in positions), dtype=np.float64, count=len(positions)
        )
        index = np.asarray(positions)
        keep.extend(index[m4_keep(steps, values, max_points)].tolist())
    keep.sort()
    return [rows[p] for p in keep]
