"""Quality metrics (numpy only)."""

from __future__ import annotations

import numpy as np


def seam_score(img: np.ndarray) -> float:
    """How visible the wrap-around seams are when img (H x W [x C]) is repeated.

    Mean absolute step across the two wrap seams (last column -> first, last row -> first)
    divided by the mean step between neighbouring interior columns and rows. 1.0 is a
    perfect tile (the seam is like any other pair of neighbours); an untouched photo scores
    far higher.
    """
    a = np.asarray(img, np.float64)
    if a.ndim == 2:
        a = a[..., None]
    seam = np.concatenate([np.abs(a[:, -1] - a[:, 0]).ravel(), np.abs(a[-1] - a[0]).ravel()])
    inner = np.concatenate([np.abs(np.diff(a, axis=1)).ravel(), np.abs(np.diff(a, axis=0)).ravel()])
    return float(seam.mean() / max(inner.mean(), 1e-12))
