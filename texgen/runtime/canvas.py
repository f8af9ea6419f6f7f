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


def period_distortion(k: np.ndarray, h_cells: int, w_cells: int) -> float:
    """Largest relative change of a wave's period when rounded onto an h x w-cell torus.

    k: (P, 2) wave numbers [k_y, k_x] in radians per cell (see models/layers.PeriodicWaves).
    Waves longer than the canvas are ignored (they round to 0, a flat band, by design).
    """
    worst = 0.0
    for n_cells, kk in ((h_cells, k[:, 0]), (w_cells, k[:, 1])):
        periods = kk * n_cells / (2 * np.pi)          # how many periods fit, unrounded
        fits = np.abs(periods) >= 1
        if fits.any():
            rel = np.abs(np.round(periods[fits]) - periods[fits]) / np.abs(periods[fits])
            worst = max(worst, float(rel.max()))
    return worst


def whole_period_sizes(k: np.ndarray, width: int, height: int, scale: int,
                       tolerance: float = 0.01) -> tuple[int, int] | None:
    """The canvas size nearest to width x height (within 25 %) whose torus holds every wave
    with a period distortion below tolerance; None if there is none."""
    best = None
    for dw in range(-width // 4, width // 4 + 1, scale):
        for dh in range(-height // 4, height // 4 + 1, scale):
            w, h = width + dw, height + dh
            if min(w, h) < scale:
                continue
            H, W = torus_cells(w, h, scale)
            if period_distortion(k, H, W) < tolerance:
                cand = (abs(dw) + abs(dh), W * scale, H * scale)
                best = min(best or cand, cand)
    return None if best is None else best[1:]
