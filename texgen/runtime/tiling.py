"""Paint a canvas on a torus, in one shot or in overlapping tiles that give the same pixels.

Backend-agnostic (numpy only): `run(z, ys, xs)` is any function that paints the interior of a
noise tile z (1, C, h + 2*margin, w + 2*margin) whose rows and columns sit at canvas cells
ys, xs and returns (1, channels, h*scale, w*scale) (models/psgan.Generator.interior). The
torch painter and the onnxruntime painter both call this, so there is one tiling
implementation; a one-shot canvas is the single tile covering the torus.

Why tiles equal the one-shot canvas: Z is drawn for the whole torus (runtime/noise.py), a tile
reads its cells plus `margin` cells of context on every side (wrapping around the torus), and
the wave coordinates are the canvas coordinates, so every output pixel inside the tile sees
exactly the inputs it sees in the one-shot canvas. margin >= the receptive field in cells.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from texgen.runtime.imageio import float_to_uint


# Largest tile edge in noise cells. On a 2-core CPU the default-size generator paints about
# as fast with tiles of 16 to 48 cells (within run-to-run noise), the fast preset's about 10 %
# faster at 16 than at 32; 32 keeps memory bounded (0.83 GiB at 8192 px) and per-tile
# overhead small (benchmarks/out/runtime_speed.md). Sizes divide into equal tiles (tile_shape).
DEFAULT_TILE = 32


class Cancelled(Exception):
    """Raised when the caller's cancel() returned True between tiles."""


def tile_starts(n: int, t: int) -> list[int]:
    """Starts of tiles of t cells covering 0..n-1; the last is pulled back so every tile has
    the same shape (one fixed shape: no re-planning per tile on GPUs)."""
    if t >= n:
        return [0]
    starts = list(range(0, n - t, t)) + [n - t]
    return starts


def to_pixels(img: np.ndarray, dtype) -> np.ndarray:
    """Model output (channels, h, w) in [-1, 1] -> pixels (h, w, channels) of `dtype`:
    uint8 0..255, uint16 0..65535 (rounded, clipped), float32 [0, 1] (imageio's convention)."""
    dtype = np.dtype(dtype)
    x = img.transpose(1, 2, 0) * np.float32(0.5) + np.float32(0.5)
    if dtype == np.float32:
        return x
    if dtype not in (np.uint8, np.uint16):
        raise ValueError(f"pixels can be uint8, uint16 or float32, not {dtype}")
    return float_to_uint(x, dtype)


def tile_shape(H: int, W: int, tile: int | None) -> tuple[int, int]:
    """Edges (ty, tx) in cells of the equal tiles that cover an H x W torus: at most `tile`
    (None: one tile), as even as the canvas allows: a 32-cell side in tiles of <= 24 is two
    of 16, not two of 24 overlapping by 16 (overlap is wasted work)."""
    if tile is None:
        return H, W
    return math.ceil(H / math.ceil(H / tile)), math.ceil(W / math.ceil(W / tile))


def tile_noise(z: np.ndarray, y0: int, x0: int, h: int, w: int, margin: int):
    """The input of one tile: its h x w cells at (y0, x0) of the torus z (1, C, H, W) plus
    `margin` cells of their neighbours on each side, wrapping around the torus, and the canvas
    cells (rows, cols) those sit at, as float32 for the wave coordinates."""
    H, W = z.shape[2], z.shape[3]
    rows = np.arange(y0 - margin, y0 + h + margin) % H
    cols = np.arange(x0 - margin, x0 + w + margin) % W
    return z[:, :, rows][:, :, :, cols], rows.astype(np.float32), cols.astype(np.float32)


def paint(run: Callable, z: np.ndarray, scale: int, margin: int, tile: int | None = None,
          progress: Callable[[int, int], None] | None = None,
          cancel: Callable[[], bool] | None = None, out: np.ndarray | None = None) -> np.ndarray:
    """Paint the torus z (1, C, H, W cells) into (channels, H*scale, W*scale) float32.

    run(zt, rows, cols) paints the interior of a tile: zt is h x w cells plus `margin` cells
    of context on each side (tile_noise), the result (1, channels, h*scale, w*scale).
    tile: largest tile edge in cells (None: one shot, the whole torus as a single tile); the
    tiles are equal and as even as possible (tile_shape).
    progress(done, total) is called after each tile; cancel() is polled before each tile and
    raises Cancelled.
    out: optional preallocated pixels (H*scale, W*scale, channels) of uint8, uint16 or float32:
    each tile is converted as it is painted (to_pixels) and written there, so a huge canvas
    never exists as float32; returns out. Without out, the canvas is returned in the model's range.
    """
    _, _, H, W = z.shape
    if out is not None:
        if out.ndim != 3 or out.shape[:2] != (H * scale, W * scale):
            raise ValueError(f"out must be ({H * scale}, {W * scale}, channels), not {out.shape}")
    ty, tx = tile_shape(H, W, tile)
    jobs = [(y0, x0) for y0 in tile_starts(H, ty) for x0 in tile_starts(W, tx)]

    def paint_tile(y0, x0):
        img = run(*tile_noise(z, y0, x0, ty, tx, margin))[0]
        if img.shape[1:] != (ty * scale, tx * scale):
            raise ValueError(f"the painter returned {img.shape[1:]} px for a tile of "
                             f"{ty}x{tx} cells, not {(ty * scale, tx * scale)}")
        return img if out is None else to_pixels(img, out.dtype)

    canvas = out
    for done, (y0, x0) in enumerate(jobs, 1):
        if cancel and cancel():
            raise Cancelled()
        img = paint_tile(y0, x0)
        if canvas is None:
            canvas = np.empty((img.shape[0], H * scale, W * scale), np.float32)
        ys, xs = slice(y0 * scale, (y0 + ty) * scale), slice(x0 * scale, (x0 + tx) * scale)
        if out is None:
            canvas[:, ys, xs] = img
        else:
            out[ys, xs] = img
        del img
        if progress:
            progress(done, len(jobs))
    return canvas


def _resample_axis(img: np.ndarray, n: int, axis: int, dst: np.ndarray, chunk: int) -> None:
    """Fourier-resample float32 `img` along `axis` (1 or 2) to n samples into dst, a band of
    `chunk` rows or columns at a time (rfft/irfft: memory is bounded by the band)."""
    m = img.shape[axis]
    k = min(m, n) // 2                    # keep frequencies 0 .. k (k at half weight unless it
    half = not (n % 2 == 0 and k == n // 2)   # is the output's Nyquist bin): a real, symmetric cut
    other = 3 - axis
    for c in range(img.shape[0]):
        for a in range(0, img.shape[other], chunk):
            sl = [c, slice(None), slice(None)]
            sl[other] = slice(a, a + chunk)
            spec = np.fft.rfft(img[tuple(sl)], axis=axis - 1)
            spec = spec[(slice(None), slice(0, k + 1)) if axis == 2 else (slice(0, k + 1),)]
            if half and k:
                spec[(slice(None), k) if axis == 2 else (k,)] *= 0.5
            dst[tuple(sl)] = np.fft.irfft(spec, n=n, axis=axis - 1) * (n / m)


def resample_periodic(img: np.ndarray, height: int, width: int, chunk: int = 256) -> np.ndarray:
    """Resize (C, h, w) to (C, height, width) by Fourier interpolation, which keeps a periodic
    image exactly periodic: used for canvas sizes that are not a whole number of cells.

    Separable (rows, then columns), float32 results, one band of `chunk` rows or columns in
    complex form at a time: an 8192 px canvas needs little more than its input and output.
    """
    c, h, w = img.shape
    if (h, w) == (height, width):
        return img
    img = np.asarray(img, np.float32)
    if w != width:
        tmp = np.empty((c, h, width), np.float32)
        _resample_axis(img, width, 2, tmp, chunk)
        img = tmp
    if h != height:
        res = np.empty((c, height, width), np.float32)
        _resample_axis(img, height, 1, res, chunk)
        img = res
    return img
