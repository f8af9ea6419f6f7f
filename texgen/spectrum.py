"""Periods of an image, from peaks of its power spectrum (numpy only).

Used to start PSGAN's wave numbers at the exemplar's true periods (gradient descent through a
sine aliased on a 32-px cell grid rarely finds them by itself), to choose a training patch
that shows the discriminator whole periods, and to report periods.
"""

from __future__ import annotations

import numpy as np

# A spectral peak is a clear period when it stands this many times above the median power
# of its 9 x 9-bin neighbourhood and holds this share of the image's (non-DC) energy. On the
# sample photos the lattices of tiles, bricks, stripes, diamond plate and wood planks stand
# 80-40000x above their surroundings; grass, concrete, cobbles, rock and gravel at most 37x.
CLEAR_PROMINENCE = 50.0
CLEAR_SHARE = 0.002


def _spectrum(img: np.ndarray):
    """(power, f_y grid, f_x grid, |f|, local-maximum mask on one half-plane) of img's luma."""
    g = img.mean(axis=2) if img.ndim == 3 else img
    g = np.asarray(g, np.float64) - g.mean()
    h, w = g.shape
    spec = np.abs(np.fft.fft2(g)) ** 2
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[None, :]
    radius = np.sqrt(fy ** 2 + fx ** 2)
    # local maxima over the 3x3 neighbourhood on the (periodic) frequency torus (a running
    # maximum: eight rolled copies at once took 8x the spectrum's memory)
    neigh = np.full_like(spec, -np.inf)
    for dy in (-1, 0, 1):
        rolled = np.roll(spec, dy, 0)
        for dx in (-1, 0, 1):
            if dy or dx:
                np.maximum(neigh, np.roll(rolled, dx, 1), out=neigh)
    peak = (spec > neigh) & ((fy > 0) | ((fy == 0) & (fx > 0)))
    return spec, fy, fx, radius, peak


def dominant_frequencies(img: np.ndarray, n: int, max_period: float | None = None) -> np.ndarray:
    """The n strongest spatial frequencies of img (H x W [x C]) as (n, 2) [f_y, f_x] cycles/px.

    Only one of each +-f pair is returned (f_y >= 0). Frequencies whose period exceeds
    max_period (default: a third of the smaller side) are ignored: they are shading, not
    structure. A peak must be a local maximum of the spectrum so harmonics of one peak's
    leakage are not counted twice.
    """
    spec, fy, fx, radius, peak = _spectrum(img)
    h, w = spec.shape
    max_period = max_period or min(h, w) / 3
    peak &= radius >= 1.0 / max_period
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


def clear_periods(img: np.ndarray, max_period: float | None = None) -> np.ndarray:
    """The image's clear periodic lines, longest period first, as (k, 2) [f_y, f_x] cycles/px
    (k = 0 for textures with no clear period: grass, concrete, cobbles).

    A clear line is a local maximum of the spectrum that stands CLEAR_PROMINENCE times above
    the median of its 9 x 9-bin neighbourhood and holds CLEAR_SHARE of the energy: a lattice
    (tiles, brick courses, stripes), not the broad hump of a stochastic texture. Periods over
    max_period px (default half the smaller side: two periods must fit) are left out.
    """
    spec, fy, fx, radius, peak = _spectrum(img)
    h, w = spec.shape
    max_period = max_period or min(h, w) / 2
    total = spec[radius > 0].sum()
    if total <= 0:
        return np.zeros((0, 2), np.float32)
    cand = np.argwhere(peak & (radius >= 1.0 / max_period) & (spec >= CLEAR_SHARE * total))
    out = []
    for i, j in cand:
        rows = np.arange(i - 4, i + 5) % h
        cols = np.arange(j - 4, j + 5) % w
        if spec[i, j] >= CLEAR_PROMINENCE * np.median(spec[np.ix_(rows, cols)]):
            out.append((fy[i, 0], fx[0, j]))
    out = np.array(out, np.float64).reshape(-1, 2)
    return out[np.argsort(np.hypot(out[:, 0], out[:, 1]), kind="stable")].astype(np.float32)


def fundamentals(freqs: np.ndarray, tol: float) -> np.ndarray:
    """freqs (longest period first) without those that are harmonics (2..4x) of an earlier one."""
    kept: list[np.ndarray] = []
    for f in np.asarray(freqs, np.float64):
        if not any(_is_harmonic(f, g, tol) for g in kept):
            kept.append(f)
    return np.array(kept, np.float32).reshape(-1, 2)


def _is_harmonic(f: np.ndarray, g: np.ndarray, tol: float) -> bool:
    """Is f an integer multiple (2..4) of g, up to sign?"""
    return any(np.abs(f - s * m * g).max() < tol * m for m in range(2, 5) for s in (1, -1))
