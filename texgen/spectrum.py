"""Dominant periods of an image, from peaks of its power spectrum (numpy only).

Used to start PSGAN's wave numbers at the exemplar's true periods (gradient descent through a
sine aliased on a 32-px cell grid rarely finds them by itself), and to report periods.
"""

from __future__ import annotations

import numpy as np


def dominant_frequencies(img: np.ndarray, n: int, max_period: float | None = None) -> np.ndarray:
    """The n strongest spatial frequencies of img (H x W [x C]) as (n, 2) [f_y, f_x] cycles/px.

    Only one of each +-f pair is returned (f_y >= 0). Frequencies whose period exceeds
    max_period (default: a third of the smaller side) are ignored: they are shading, not
    structure. A peak must be a local maximum of the spectrum so harmonics of one peak's
    leakage are not counted twice.
    """
    g = img.mean(axis=2) if img.ndim == 3 else img
    g = g - g.mean()
    h, w = g.shape
    spec = np.abs(np.fft.fft2(g)) ** 2
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[None, :]
    max_period = max_period or min(h, w) / 3
    radius = np.sqrt(fy ** 2 + fx ** 2)
    spec[radius < 1.0 / max_period] = 0
    # local maxima over the 3x3 neighbourhood on the (periodic) frequency torus
    neigh = np.max([np.roll(np.roll(spec, dy, 0), dx, 1)
                    for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx], axis=0)
    peak = (spec > neigh) & ((fy > 0) | ((fy == 0) & (fx > 0)))
    fys = np.broadcast_to(fy, spec.shape)[peak]
    fxs = np.broadcast_to(fx, spec.shape)[peak]
    # rank by power x period: sharp lines (mortar, grout) put much power into harmonics,
    # and the fundamentals are what the generator needs to lay out the lattice
    score = spec[peak] / radius[peak]
    chosen: list[np.ndarray] = []
    tol = 1.5 / min(h, w)                           # a bin and a half
    for i in np.argsort(score)[::-1]:
        f = np.array([fys[i], fxs[i]])
        if any(_is_harmonic(f, g, tol) for g in chosen):
            continue
        chosen.append(f)
        if len(chosen) == n:
            break
    out = np.array(chosen, np.float64).reshape(-1, 2)
    if len(out) < n:                               # flat image: fill with harmless low waves
        out = np.concatenate([out, np.full((n - len(out), 2), 1.0 / max_period)])
    return out.astype(np.float32)


def _is_harmonic(f: np.ndarray, g: np.ndarray, tol: float) -> bool:
    """Is f an integer multiple (2..4) of g, up to sign?"""
    return any(np.abs(f - s * m * g).max() < tol * m for m in range(2, 5) for s in (1, -1))
