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
from texgen.runtime.tiling import paint, resample_periodic

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


def torus_cells(w: int, h: int, scale: int) -> tuple[int, int]:
    """Noise cells (rows, cols) of the whole torus nearest to w x h px."""
    return max(1, round(h / scale)), max(1, round(w / scale))


def synthesize(run: Callable, layout: NoiseLayout, scale: int, margin: int, width: int,
               height: int, seed: int = 0, morph_seed: int | None = None,
               tile: int | None = None, progress=None, cancel=None) -> np.ndarray:
    """Paint (channels, height, width) in the model's output range.

    run(z, ys, xs, torus) paints a noise tile (see tiling.paint). morph_seed: a second global
    code that the canvas morphs to and back across its width (manifold models).
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
    img = paint(lambda zt, ys, xs: run(zt, ys, xs, torus), z, scale, margin, tile,
                progress=progress, cancel=cancel)
    return resample_periodic(img, height, width)
