"""Paint a canvas on a torus, in one shot or in overlapping tiles that give the same pixels.

Backend-agnostic (numpy only): `run(z, ys, xs)` is any function that paints a noise tile z
(1, C, h, w) whose rows and columns sit at canvas cells ys, xs and returns
(1, channels, h*scale, w*scale). The torch painter and the onnxruntime painter both call this,
so there is one tiling implementation.

Why tiles equal the one-shot canvas: Z is drawn for the whole torus (runtime/noise.py), a tile
reads its cells plus `margin` cells of context on every side (wrapping around the torus), and
the wave coordinates are the canvas coordinates, so every output pixel inside the tile sees
exactly the inputs it sees in the one-shot canvas. margin >= the receptive field in cells.
"""

from __future__ import annotations

from typing import Callable

import numpy as np


class Cancelled(Exception):
    """Raised when the caller's cancel() returned True between tiles."""


def tile_starts(n: int, t: int) -> list[int]:
    """Starts of tiles of t cells covering 0..n-1; the last is pulled back so every tile has
    the same shape (one fixed shape: no re-planning per tile on GPUs)."""
    if t >= n:
        return [0]
    starts = list(range(0, n - t, t)) + [n - t]
    return starts


def paint(run: Callable, z: np.ndarray, scale: int, margin: int, tile: int | None = None,
          progress: Callable[[int, int], None] | None = None,
          cancel: Callable[[], bool] | None = None, out: np.ndarray | None = None) -> np.ndarray:
    """Paint the torus z (1, C, H, W cells) into (channels, H*scale, W*scale) float32.

    tile: tile edge in cells (None: one shot). progress(done, total) is called after each tile;
    cancel() is polled before each tile and raises Cancelled.
    """
    _, _, H, W = z.shape
    if tile is None or (tile >= H and tile >= W):
        if cancel and cancel():
            raise Cancelled()
        img = run(z, np.arange(H, dtype=np.float32), np.arange(W, dtype=np.float32))[0]
        if progress:
            progress(1, 1)
        return img
    ty, tx = min(tile, H), min(tile, W)
    ys0, xs0 = tile_starts(H, ty), tile_starts(W, tx)
    total, done = len(ys0) * len(xs0), 0
    for y0 in ys0:
        rows = np.arange(y0 - margin, y0 + ty + margin) % H
        for x0 in xs0:
            if cancel and cancel():
                raise Cancelled()
            cols = np.arange(x0 - margin, x0 + tx + margin) % W
            zt = z[:, :, rows][:, :, :, cols]
            img = run(zt, rows.astype(np.float32), cols.astype(np.float32))[0]
            m = margin * scale
            img = img[:, m:m + ty * scale, m:m + tx * scale]
            if out is None:
                out = np.empty((img.shape[0], H * scale, W * scale), np.float32)
            out[:, y0 * scale:(y0 + ty) * scale, x0 * scale:(x0 + tx) * scale] = img
            done += 1
            if progress:
                progress(done, total)
    return out


def resample_periodic(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize (C, h, w) to (C, height, width) by Fourier interpolation, which keeps a periodic
    image exactly periodic: used for canvas sizes that are not a whole number of cells."""
    c, h, w = img.shape
    if (h, w) == (height, width):
        return img
    spec = np.fft.fft2(img, axes=(1, 2))
    out = np.zeros((c, height, width), np.complex128)
    hy, hx = min(h, height) // 2, min(w, width) // 2
    for sy_src, sy_dst in ((slice(0, hy), slice(0, hy)), (slice(h - hy, h), slice(height - hy, height))):
        for sx_src, sx_dst in ((slice(0, hx), slice(0, hx)), (slice(w - hx, w), slice(width - hx, width))):
            out[:, sy_dst, sx_dst] = spec[:, sy_src, sx_src]
    res = np.fft.ifft2(out, axes=(1, 2)).real * (height * width) / (h * w)
    return res.astype(np.float32)
