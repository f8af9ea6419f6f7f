"""From a requested size and seed to painted pixels: the steps every painter shares.

    size in px -> torus of whole noise cells -> Z (noise.py) -> tiles (tiling.py) -> image
Sizes that are not a whole number of cells are painted on the nearest whole torus and
Fourier-resampled, which keeps them exactly periodic (the texture scales by < scale/2 px).
"""

from __future__ import annotations

import re
from typing import Callable

import numpy as np

from texgen.errors import TexgenError
from texgen.runtime.noise import NoiseLayout, cyclic_morph, draw_codes, sample_noise
from texgen.runtime.tiling import paint, resample_periodic, tile_noise, to_pixels

MAX_SIDE = 65536


def parse_size(text: str) -> tuple[int, int]:
    """'2048' or '2048x1024' (width x height) -> (width, height)."""
    m = re.fullmatch(r"\s*(\d+)\s*(?:[xX*]\s*(\d+))?\s*", str(text))
    if not m:
        raise TexgenError(f"size {text!r} is not WIDTHxHEIGHT, e.g. 2048x2048 or 2048")
    w = int(m.group(1))
    h = int(m.group(2) or w)
    check_size(w, h)
    return w, h


def check_size(w: int, h: int) -> None:
    if min(w, h) < 16 or max(w, h) > MAX_SIDE:
        raise TexgenError(f"size {w}x{h} is impossible: each side must be 16..{MAX_SIDE} px")


def check_paints_textures(method: str) -> None:
    """Painting from noise alone is for texture models: a stylisation network reads a content
    image where it would get noise (runtime/stylize.py paints those)."""
    if method == "stylize":
        raise TexgenError("this is a stylisation model: it paints over a content image, not from "
                          "noise (texgen stylize --model M --content IMAGE)")


def torus_size(width: int, height: int, scale: int, tileable: bool = True) -> tuple[int, int]:
    """The canvas (w, h) in px to paint for a width x height texture: the texture itself when
    it must tile; otherwise a torus a quarter (and a cell) bigger, whose top-left
    width x height crop is the texture: its edges never meet, so nothing repeats visibly."""
    if tileable:
        return width, height
    return width + width // 4 + scale, height + height // 4 + scale


def torus_cells(w: int, h: int, scale: int) -> tuple[int, int]:
    """Noise cells (rows, cols) of the whole torus nearest to w x h px."""
    return max(1, round(h / scale)), max(1, round(w / scale))


def synthesize(run: Callable, layout: NoiseLayout, scale: int, margin: int, width: int,
               height: int, seed: int = 0, morph_seed: int | None = None,
               tile: int | None = None, progress=None, cancel=None,
               out: np.ndarray | None = None,
               window: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Paint (channels, height, width) in the model's output range.

    run(z, ys, xs, torus) paints a noise tile's interior; tile, progress and cancel: see
    tiling.paint. morph_seed: a second global code that the canvas morphs to and back
    across its width (manifold models).
    out: optional preallocated pixels (height, width, channels), uint8, uint16 or float32
    (tiling.to_pixels); filled and returned instead. When the size is a whole number of cells
    each tile goes straight into it (memory: out plus one tile), else the float
    canvas is resampled first.
    window: (y, x, h, w) px, multiples of `scale` on a canvas of whole cells: paint only that
    part of the canvas, (channels, h, w): the very pixels of that crop of the whole canvas (one
    tile of the same torus), e.g. a seed's preview at the size it will be painted.
    """
    check_size(width, height)
    H, W = torus_cells(width, height, scale)
    codes = morph = None
    if morph_seed is not None and layout.n_global:
        codes = np.concatenate([draw_codes(layout, np.random.default_rng(s), 1)
                                for s in (seed, morph_seed)])
        morph = cyclic_morph(H, W)
    z = sample_noise(layout, H, W, seed=seed, codes=codes, morph=morph)
    torus = np.array([H, W], np.float32)
    painter = lambda zt, ys, xs: run(zt, ys, xs, torus)
    if window is not None:
        y, x, h, w = window
        if (H * scale, W * scale) != (height, width) or any(v % scale for v in window) \
                or min(h, w) < scale or y + h > height or x + w > width:
            raise TexgenError(f"window {window} must be whole {scale} px cells inside a canvas "
                              f"of whole cells, not {width}x{height}")
        return painter(*tile_noise(z, y // scale, x // scale, h // scale, w // scale, margin))[0]
    if out is not None and out.shape[:2] != (height, width):
        raise ValueError(f"out must be ({height}, {width}, channels), not {out.shape}")
    whole = (H * scale, W * scale) == (height, width)
    if out is not None and whole:
        return paint(painter, z, scale, margin, tile, progress=progress, cancel=cancel, out=out)
    img = resample_periodic(paint(painter, z, scale, margin, tile, progress=progress,
                                  cancel=cancel), height, width)
    if out is None:
        return img
    for y in range(0, height, 512):                 # convert in bands: no second full copy
        out[y:y + 512] = to_pixels(img[:, y:y + 512], out.dtype)
    return out


def period_distortions(k: np.ndarray, h_cells: int, w_cells: int) -> np.ndarray:
    """(P,) how much rounding onto an h x w-cell torus changes each wave: |k' - k| / |k|, the
    rounded wave vector's error relative to its length (a stretch of the period, a turn of its
    direction, or both: how far the pattern drifts over one period, in periods).

    k: (P, 2) wave numbers [k_y, k_x] in radians per cell (see models/layers.PeriodicWaves).
    A wave longer than the canvas on both axes is ignored (it rounds to 0, a flat band, by
    design). Measured on the vector, not per axis: the tiny x part of a nearly vertical wave
    may round to half of itself while the wave hardly moves.
    """
    k = np.asarray(k, np.float64).reshape(-1, 2)
    cells = np.array([h_cells, w_cells], np.float64)
    rounded = np.round(k * cells / (2 * np.pi)) * (2 * np.pi) / cells
    length = np.hypot(k[:, 0], k[:, 1])
    fits = np.any(rounded != 0, axis=1) & (length > 0)
    out = np.zeros(len(k))
    out[fits] = np.hypot(*(rounded - k)[fits].T) / length[fits]
    return out


def period_distortion(k: np.ndarray, h_cells: int, w_cells: int,
                      weights: np.ndarray | None = None) -> float:
    """Largest relative change of a wave's period when rounded onto an h x w-cell torus;
    weights (P,) in [0, 1]: how much each wave shows in the texture (its change counts that
    much). 0 for no waves."""
    d = period_distortions(k, h_cells, w_cells)
    if weights is not None:
        d = d * np.asarray(weights, np.float64)
    return float(d.max(initial=0.0))


def whole_period_sizes(k: np.ndarray, width: int, height: int, scale: int,
                       tolerance: float = 0.01, tileable: bool = True,
                       weights: np.ndarray | None = None) -> tuple[int, int] | None:
    """The texture size nearest to width x height (within 25 %, at most 64 cells away) whose
    torus (torus_size: the texture itself, or the bigger torus a --no-tileable texture is cut
    from) holds every wave with a (weighted) period distortion below tolerance; None if there
    is none. Sizes are the user's: what to pass as --size."""
    best = None
    reach = lambda n: min(n // 4, 64 * scale)
    for dw in range(-reach(width), reach(width) + 1, scale):
        for dh in range(-reach(height), reach(height) + 1, scale):
            w, h = width + dw, height + dh
            if min(w, h) < max(scale, 16) or max(w, h) > MAX_SIDE:
                continue
            H, W = torus_cells(*torus_size(w, h, scale, tileable), scale)
            if period_distortion(k, H, W, weights) < tolerance:
                size = (W * scale, H * scale) if tileable else (w, h)
                cand = (abs(dw) + abs(dh), *size)
                best = min(best or cand, cand)
    return None if best is None else best[1:]
