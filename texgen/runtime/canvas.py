"""From a requested size, seed and window to painted pixels: the one painting path.

    texture px -> torus of whole noise cells (Canvas) -> noise of each tile (noise.Noise)
    -> bands of tiles (tiling.paint_bands) -> resampled rows (resample.py) -> a sink

Every painter (runtime/onnx_painter.OnnxPainter, paint.TorchPainter: texgen/painters.Painter)
paints through paint_texture, so the CLI, texture sets, evaluation and the Blender add-on get
the same pixels for the same model, seed and size, and any window of a texture is exactly that
crop of the whole texture: the noise is random access, a window paints only the cells under it
(plus the network's margin), and the resampling kernel is local.

Memory is bounded by a band of tiles, never the canvas: rows go to a sink as soon as they are
final (an array, pixels, or a PNG streamed to disk), so a 65536 x 65536 texture paints in
the memory of a band (benchmarks/out/scale.md).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NamedTuple, Protocol

import numpy as np

from texgen.errors import TexgenError
from texgen.runtime.noise import Noise
from texgen.runtime.resample import Axis, resample
from texgen.runtime.tiling import DEFAULT_TILE, paint_bands, to_pixels

MAX_SIDE = 65536
# Float pixels of one band of tiles (the rest of painting's memory is one tile's network
# activations and the sink's buffers): 65536 px wide RGB is then 5 cell rows (160 px) a band.
BAND_BYTES = 128 * 2 ** 20


# ----------------------------------------------------------------------------- sizes

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


def check_paints_textures(kind: str) -> None:
    """Painting from noise alone is for texture models: a stylisation network reads a content
    image where it would get noise (runtime/stylize.py paints those)."""
    if kind == "stylize":
        raise TexgenError("this is a stylisation model: it paints over a content image, not from "
                          "noise (texgen stylize --model M --content IMAGE)")


def torus_cells(w: int, h: int, scale: int, zoom: float = 1.0) -> tuple[int, int]:
    """Noise cells (rows, cols) of the whole torus nearest to w x h px (the model's px: w x h
    texture px times zoom)."""
    return max(1, round(h * zoom / scale)), max(1, round(w * zoom / scale))


@dataclass(frozen=True)
class Canvas:
    """A width x height texture and the torus of whole noise cells it is painted from: the
    nearest one, resampled to the texture's size (resample.py) when that is not whole cells,
    so the texture tiles; or, not tileable, a torus a quarter and a cell bigger whose top-left
    width x height crop is the texture: its edges never meet, so nothing repeats visibly, and
    nothing is resampled.

    zoom: the model's px per texture px (PSGANConfig.zoom: its exemplar was resampled by it
    so that a lattice fits the cell grid); the torus is whole cells of the model's px, and the
    texture is resampled from it to the photo's px: features keep the photo's size."""
    width: int
    height: int
    scale: int
    tileable: bool = True
    zoom: float = 1.0

    @property
    def cells(self) -> tuple[int, int]:
        """(H, W) noise cells of the torus."""
        if self.tileable:
            return torus_cells(self.width, self.height, self.scale, self.zoom)
        bigger = lambda n: -(-(n + n // 4) // self.scale) + 1
        return bigger(math.ceil(self.height * self.zoom)), bigger(math.ceil(self.width * self.zoom))

    @property
    def axes(self) -> tuple[Axis, Axis]:
        """(rows, columns): texture px from torus px."""
        H, W = self.cells
        crop, z = not self.tileable, self.zoom
        return (Axis(self.height, H * self.scale, crop, z),
                Axis(self.width, W * self.scale, crop, z))


class Window(NamedTuple):
    """A region of a texture in px: x, y of its top-left pixel, w x h px."""
    x: int
    y: int
    w: int
    h: int


def parse_window(text: str) -> Window:
    """'X,Y,W,H' (px) -> Window."""
    m = re.fullmatch(r"\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*", str(text))
    if not m:
        raise TexgenError(f"window {text!r} is not X,Y,W,H in px, e.g. 0,0,512,512")
    return Window(*(int(g) for g in m.groups()))


def check_window(window, width: int, height: int) -> Window:
    """The window as a Window, or TexgenError unless it lies inside a width x height texture."""
    try:
        x, y, w, h = (int(v) for v in window)
    except (TypeError, ValueError):
        raise TexgenError(f"window {window!r} is not (x, y, w, h) in px") from None
    if min(x, y) < 0 or min(w, h) < 1 or x + w > width or y + h > height:
        raise TexgenError(f"window {x},{y},{w},{h} (x, y, width, height) does not lie inside the "
                          f"{width}x{height} texture")
    return Window(x, y, w, h)


# ----------------------------------------------------------------------------- sinks

class Sink(Protocol):
    """Where painted rows go: write(y, rows) with rows (channels, n, w) float32 in the model's
    range [-1, 1], rows y..y+n-1 of the window, called top to bottom."""

    def write(self, y: int, rows: np.ndarray) -> None: ...


class ArraySink:
    """Collects the window as one float array (channels, h, w) in [-1, 1]: `array`."""

    def __init__(self, channels: int, height: int, width: int):
        self.array = np.empty((channels, height, width), np.float32)

    def write(self, y: int, rows: np.ndarray) -> None:
        self.array[:, y:y + rows.shape[1]] = rows


class PixelSink:
    """Rows as pixels: put(y, pixels (n, w, c)) of `dtype` (uint8, uint16 or float32 in
    [0, 1]: tiling.to_pixels) of the model channels `channels` (a slice; default all),
    converted CHUNK rows at a time so the float temporaries stay small."""
    CHUNK = 64

    def __init__(self, put: Callable[[int, np.ndarray], None], dtype, channels: slice = slice(None)):
        self.put, self.dtype, self.channels = put, np.dtype(dtype), channels

    @classmethod
    def into(cls, out: np.ndarray, channels: slice = slice(None)) -> "PixelSink":
        """Write into preallocated pixels out (h, w, c)."""
        def put(y, px):
            out[y:y + len(px)] = px
        return cls(put, out.dtype, channels)

    def write(self, y: int, rows: np.ndarray) -> None:
        for a in range(0, rows.shape[1], self.CHUNK):
            self.put(y + a, to_pixels(rows[self.channels, a:a + self.CHUNK], self.dtype))


# ----------------------------------------------------------------------------- painting

def render(run: Callable, z, scale: int, margin: int, axes: tuple[Axis, Axis], window: Window,
           sink: Sink, channels: int, tile: int | None = DEFAULT_TILE, progress=None,
           cancel=None, band_bytes: int = BAND_BYTES) -> None:
    """Paint `window` of a texture whose rows and columns come from the torus z (noise.Noise,
    a tiling.TileInputs or an array (1, C, H, W)) through `axes` (resample.Axis: rows,
    columns), into `sink`, band by band.

    run(zt, ys, xs) paints a tile's interior (tiling.paint_bands); channels: what it returns.
    Each band of source rows is resampled across (its columns), kept until the texture rows
    that read it are final, and those go to the sink: a band, plus the kernel's few rows."""
    x, y, w, h = window
    rows_axis, cols_axis = axes
    ix, wx = cols_axis.taps(x, x + w)
    iy, wy = rows_axis.taps(y, y + h)
    sx0, sx1 = int(ix.min()), int(ix.max()) + 1          # source px the window reads
    cx0, cx1 = sx0 // scale, -(-sx1 // scale)             # ... in whole cells
    lo, hi = iy[:, 0], iy[:, -1] + 1                      # source rows each texture row reads
    cy0, cy1 = int(lo[0]) // scale, -(-int(hi[-1]) // scale)
    band_cells = band_bytes // max(1, 4 * channels * scale * scale * (cx1 - cx0))
    buf, buf_lo, buf_hi, done = None, 0, 0, 0
    for r, band in paint_bands(run, z, scale, margin, (cy0, cy1), (cx0, cx1), tile,
                               band_cells, progress, cancel):
        part = resample(band[:, :, sx0 - cx0 * scale:sx1 - cx0 * scale], ix - sx0, wx, axis=2)
        del band
        keep = int(lo[done]) if done < h else buf_hi      # the first source row still needed
        if buf is None or keep >= buf_hi:
            buf, buf_lo = part, r * scale
        else:
            buf = np.concatenate([buf[:, keep - buf_lo:], part], axis=1)
            buf_lo = keep
        buf_hi = r * scale + part.shape[1]
        k = int(np.searchsorted(hi, buf_hi, side="right"))   # texture rows now final
        if k > done:
            sink.write(done, resample(buf, iy[done:k] - buf_lo,
                                      None if wy is None else wy[done:k], axis=1))
            done = k
    if done != h:
        raise AssertionError(f"painted {done} of {h} rows")


def paint_texture(painter, width: int, height: int, seed: int = 0, *,
                  morph_seed: int | None = None, tileable: bool = True, window=None,
                  sink: Sink | None = None, tile: int | None = DEFAULT_TILE,
                  progress: Callable[[int, int], None] | None = None,
                  cancel: Callable[[], bool] | None = None) -> np.ndarray | None:
    """Paint `window` (x, y, w, h px; default: all) of the width x height texture of `seed`
    with `painter` (texgen.painters.Painter): into `sink`, or returned as (channels, h, w)
    float32 in [-1, 1] when there is none.

    morph_seed: a second global code that the canvas morphs to and back across its width
    (manifold models). tileable=False: a crop of a bigger torus (Canvas). tile: largest tile
    edge in noise cells (None: one tile per band; tiles give the same pixels as one shot).
    progress(done, total) after each tile; cancel() before each tile (raises
    tiling.Cancelled)."""
    check_paints_textures(painter.kind)
    check_size(width, height)
    canvas = Canvas(width, height, painter.scale, tileable, painter.zoom)
    window = check_window(window if window is not None else (0, 0, width, height), width, height)
    morph = morph_seed if painter.layout.n_global else None
    noise = Noise(painter.layout, seed, canvas.cells, morph)
    torus = np.array(canvas.cells, np.float32)
    channels = painter.channels
    collect = ArraySink(channels, window.h, window.w) if sink is None else None
    render(lambda zt, ys, xs: painter.run(zt, ys, xs, torus), noise, painter.scale,
           painter.margin, canvas.axes, window, sink or collect, channels, tile, progress,
           cancel)
    return collect.array if collect else None


def synthesize(run: Callable, layout, scale: int, margin: int, width: int, height: int,
               seed: int = 0, **options) -> np.ndarray | None:
    """paint_texture for a bare tile runner run(z, ys, xs, torus) (a torch generator being
    trained, tests) instead of a painter: a texture model of `layout` with `scale` px per cell
    and `margin` cells of context. options: paint_texture's."""
    return paint_texture(_Runner(run, layout, scale, margin), width, height, seed, **options)


@dataclass
class _Runner:
    """A tile runner with the painter attributes paint_texture reads."""
    run: Callable
    layout: object
    scale: int
    margin: int
    kind: str = "psgan"
    zoom: float = 1.0

    @property
    def channels(self) -> int:
        """Ask the runner: one cell of fixed noise."""
        n = 1 + 2 * self.margin
        z = np.zeros((1, self.layout.channels, n, n), np.float32)
        return int(self.run(z, np.zeros(n, np.float32), np.zeros(n, np.float32),
                            np.ones(2, np.float32)).shape[1])


class PaintsTextures:
    """paint() for a painter class (run, layout, scale, margin, channels, kind): the Painter
    protocol's one implementation (texgen/painters.py)."""

    def paint(self, width: int, height: int, seed: int = 0, *, morph_seed: int | None = None,
              tileable: bool = True, window=None, sink: Sink | None = None,
              tile: int | None = DEFAULT_TILE, progress=None, cancel=None) -> np.ndarray | None:
        """paint_texture with this painter: (channels, h, w) float32 in [-1, 1] of `window`
        (x, y, w, h px; default the whole texture), or None when a sink took the rows."""
        return paint_texture(self, width, height, seed, morph_seed=morph_seed,
                             tileable=tileable, window=window, sink=sink, tile=tile,
                             progress=progress, cancel=cancel)


# ----------------------------------------------------------------------------- files

def paint_to_file(painter, path, width: int, height: int, seed: int = 0, *, window=None,
                  bits: int = 8, morph_seed: int | None = None, tileable: bool = True,
                  tile: int | None = DEFAULT_TILE, progress=None, cancel=None,
                  text: dict[str, str] | None = None) -> Path:
    """Paint the colour of `window` (default: the whole texture) of the width x height texture
    of `seed` to the image file `path`, atomically (texgen/files.py). A PNG (8 or 16 bits) is
    streamed: rows are compressed as they are painted, so memory is a band whatever the size;
    other formats (8 bits) hold the window's pixels and are written by Pillow. text: tEXt
    entries for a PNG (what it holds, runtime/udim.py).

    Needs nothing but its arguments: a worker on another machine paints one window or UDIM
    tile from (model, seed, size, window) and gets the pixels a single run paints there."""
    from texgen.runtime.imageio import save_image
    from texgen.runtime.maps import map_slices
    from texgen.runtime.png import PngWriter
    path = Path(path)
    colour = map_slices(painter.maps).get("color", slice(0, 1))
    n = len(range(painter.channels)[colour])
    x, y, w, h = check_window(window if window is not None else (0, 0, width, height),
                              width, height)
    args = dict(morph_seed=morph_seed, tileable=tileable, window=(x, y, w, h), tile=tile,
                progress=progress, cancel=cancel)
    if path.suffix.lower() == ".png":
        with PngWriter(path, w, h, n, bits, text=text) as png:
            painter.paint(width, height, seed,
                          sink=PixelSink(png.write, np.uint16 if bits == 16 else np.uint8, colour),
                          **args)
        return path
    if bits != 8:
        raise TexgenError(f"cannot save {path} with {bits} bits: 16-bit output is PNG only")
    pixels = np.empty((h, w, n), np.uint8)
    painter.paint(width, height, seed, sink=PixelSink.into(pixels, colour), **args)
    save_image(path, pixels)
    return path


# ----------------------------------------------------------------------------- periods

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
                       weights: np.ndarray | None = None,
                       zoom: float = 1.0) -> tuple[int, int] | None:
    """The texture size nearest to width x height (within 25 %, at most 64 cells away) whose
    torus (Canvas.cells: the texture's own, or the bigger torus a --no-tileable texture is
    cut from) holds every wave with a (weighted) period distortion below tolerance; None if
    there is none. Sizes are the user's: what to pass as --size (zoom: Canvas's)."""
    best = None
    reach = lambda n: min(n // 4, 64 * scale)
    for dw in range(-reach(width), reach(width) + 1, scale):
        for dh in range(-reach(height), reach(height) + 1, scale):
            w, h = width + dw, height + dh
            if min(w, h) < max(scale, 16) or max(w, h) > MAX_SIDE:
                continue
            H, W = Canvas(w, h, scale, tileable, zoom).cells
            if period_distortion(k, H, W, weights) < tolerance:
                size = (round(W * scale / zoom), round(H * scale / zoom)) if tileable else (w, h)
                cand = (abs(dw) + abs(dh), *size)
                best = min(best or cand, cand)
    return None if best is None else best[1:]
