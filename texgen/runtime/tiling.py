"""Paint a region of a torus band by band, in overlapping tiles that give the one-shot pixels.

Backend-agnostic (numpy only): `run(z, ys, xs)` is any function that paints the interior of a
noise tile z (1, C, h + 2*margin, w + 2*margin) whose rows and columns sit at canvas cells
ys, xs and returns (1, channels, h*scale, w*scale) (models/psgan.Generator.interior). The
torch painter and the onnxruntime painter both call this, so there is one tiling
implementation; a one-shot canvas is the single tile covering the torus.

Why tiles equal the one-shot canvas: every noise value is a function of its cell on the torus
(runtime/noise.py), a tile reads its cells plus `margin` cells of context on every side
(wrapping around the torus), and the wave coordinates are the canvas coordinates, so every
output pixel inside the tile sees exactly the inputs it sees in the one-shot canvas.
margin >= the receptive field in cells. The noise of a tile is drawn for that tile alone, so
memory is bounded by a band of tiles, whatever the canvas.
"""

from __future__ import annotations

import math
from typing import Callable, Iterator

import numpy as np

from texgen.runtime.imageio import float_to_uint


# Largest tile edge in noise cells. On a 2-core CPU the default-size generator paints about
# as fast with tiles of 16 to 48 cells (within run-to-run noise), the fast preset's about 10 %
# faster at 16 than at 32; 32 keeps memory bounded and per-tile overhead small
# (benchmarks/out/runtime_speed.md). Sizes divide into equal tiles (tile_shape).
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
    """Edges (ty, tx) in cells of the equal tiles that cover an H x W region: at most `tile`
    (None: one tile), as even as the region allows: a 32-cell side in tiles of <= 24 is two
    of 16, not two of 24 overlapping by 16 (overlap is wasted work)."""
    if tile is None:
        return H, W
    return even_split(H, tile), even_split(W, tile)


def even_split(n: int, t: int) -> int:
    """The edge of the fewest equal pieces of at most t that cover n."""
    return math.ceil(n / math.ceil(n / max(1, t)))


def tile_noise(z, y0: int, x0: int, h: int, w: int, margin: int):
    """The input of one tile: its h x w cells at (y0, x0) of the torus plus `margin` cells of
    their neighbours on each side, wrapping around the torus, and the canvas cells (rows,
    cols) those sit at, as float32 for the wave coordinates. z: the whole torus' noise
    (1, C, H, W), or a TileInputs that draws only what the tile needs."""
    H, W = z.shape[2], z.shape[3]
    rows = np.arange(y0 - margin, y0 + h + margin) % H
    cols = np.arange(x0 - margin, x0 + w + margin) % W
    zt = z.window(rows, cols) if hasattr(z, "window") else z[:, :, rows][:, :, :, cols]
    return zt, rows.astype(np.float32), cols.astype(np.float32)


class TileInputs:
    """What a tile reads, drawn for that tile alone: window(rows, cols) -> (1, C, len(rows),
    len(cols)) for canvas cells already wrapped into the torus, `shape` = (1, C, H, W) like
    the array it stands for. runtime.noise.Noise is one; runtime/stylize.py adds content."""

    def __init__(self, window: Callable[[np.ndarray, np.ndarray], np.ndarray], channels: int,
                 torus: tuple[int, int]):
        self.window = window
        self.shape = (1, channels, *torus)


def paint_bands(run: Callable, z, scale: int, margin: int, rows: tuple[int, int],
                cols: tuple[int, int], tile: int | None = None, band_cells: int | None = None,
                progress: Callable[[int, int], None] | None = None,
                cancel: Callable[[], bool] | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Paint the cells rows[0]..rows[1]-1 x cols[0]..cols[1]-1 of the torus z (an array
    (1, C, H, W) or a TileInputs; the cell indices may run past the torus: they wrap), one band
    of tile rows at a time: yields (first cell row of the band, (channels, band px, region
    width px) float32) top to bottom, each row of cells once.

    run(zt, ys, xs) paints the interior of a tile (tile_noise). tile: largest tile edge in cells
    (None: one tile for the region); band_cells: at most this many cell rows per band (memory:
    one band of float pixels). Tiles are equal (tile_shape); the last band and the last tile of
    a band are pulled back over their neighbours, and only their new rows are yielded.
    progress(done, total) is called after each tile; cancel() is polled before each tile and
    raises Cancelled.
    """
    (r0, r1), (c0, c1) = rows, cols
    R, C = r1 - r0, c1 - c0
    ty, tx = tile_shape(R, C, tile)
    if band_cells is not None:
        ty = even_split(R, min(ty, max(1, band_cells)))
    bands, starts = tile_starts(R, ty), tile_starts(C, tx)
    total, done, emitted = len(bands) * len(starts), 0, 0
    for b in bands:
        band = None
        for s in starts:
            if cancel and cancel():
                raise Cancelled()
            img = run(*tile_noise(z, r0 + b, c0 + s, ty, tx, margin))[0]
            if img.shape[1:] != (ty * scale, tx * scale):
                raise ValueError(f"the painter returned {img.shape[1:]} px for a tile of "
                                 f"{ty}x{tx} cells, not {(ty * scale, tx * scale)}")
            if band is None:
                band = np.empty((img.shape[0], ty * scale, C * scale), np.float32)
            band[:, :, s * scale:(s + tx) * scale] = img
            del img
            done += 1
            if progress:
                progress(done, total)
        new = emitted - b                       # rows of a pulled-back band already yielded
        yield r0 + emitted, band[:, new * scale:]
        emitted = b + ty
