"""Stylise a content image with a stylisation network (models/texnet.py with content input),
in one shot or in tiles that give the same pixels: numpy only, for torch and ONNX painters.

The network reads per noise cell its noise, then the content's pixels of that cell packed
into channels (3 * scale**2 of them, the last channels of z; pack() is pixel_shuffle's
inverse). The content is mirrored outwards by the network's margin (and up to whole cells),
painted as a torus whose wrap the kept pixels never see, and cropped back: any size, odd or
not square, and borders that look like the rest. Each tile draws its own noise and packs its
own content cells (tiling.TileInputs), band by band like a texture (runtime/canvas.render).
"""

from __future__ import annotations

import numpy as np

from texgen.errors import TexgenError
from texgen.runtime.canvas import ArraySink, Window, render
from texgen.runtime.imageio import resize
from texgen.runtime.noise import Noise, NoiseLayout, sample_noise
from texgen.runtime.resample import Axis
from texgen.runtime.tiling import TileInputs
from texgen.validate import RANGES


def pack(img: np.ndarray, scale: int) -> np.ndarray:
    """(B, C, h*scale, w*scale) -> (B, C*scale**2, h, w); channel c*scale**2 + dy*scale + dx
    holds pixel (dy, dx) of each cell, the order pixel_shuffle unpacks."""
    b, c, hh, ww = img.shape
    h, w = hh // scale, ww // scale
    x = img.reshape(b, c, h, scale, w, scale).transpose(0, 1, 3, 5, 2, 4)
    return np.ascontiguousarray(x.reshape(b, c * scale * scale, h, w), np.float32)


def content_noise(layout: NoiseLayout, content: np.ndarray, scale: int, seed=0) -> np.ndarray:
    """z for content (B, 3, h*scale, w*scale) in [-1, 1]: the noise of `seed` with the packed
    content in the last channels."""
    b, _, hh, ww = content.shape
    z = sample_noise(layout, hh // scale, ww // scale, seed=seed, batch=b)
    packed = pack(content, scale)
    z[:, layout.channels - packed.shape[1]:] = packed
    return z


def stylize(run, layout: NoiseLayout, scale: int, margin: int, content: np.ndarray,
            seed: int = 0, tile: int | None = None, progress=None, cancel=None,
            stroke_scale: float = 1.0) -> np.ndarray:
    """content: H x W x 3 float32 in [0, 1] -> (3, H, W) in [-1, 1].

    run(z, ys, xs, torus) paints a tile's interior (paint.torch_runner, OnnxPainter.run);
    tile, progress, cancel: see tiling.paint_bands. stroke_scale: the style's strokes and features
    come out this many times bigger (the network's scale is fixed by its training; the
    content is painted at 1/stroke_scale of its size and the result resized back).
    """
    if content.ndim != 3 or content.shape[2] != 3:
        raise TexgenError(f"content must be an RGB image, not an array of shape {content.shape}")
    RANGES["stroke_scale"].check("stroke scale", stroke_scale)
    h, w = content.shape[:2]
    if stroke_scale != 1:
        small = resize(content, max(1, round(h / stroke_scale)), max(1, round(w / stroke_scale)))
        img = stylize(run, layout, scale, margin, small, seed, tile, progress, cancel)
        return np.clip(resize(img.transpose(1, 2, 0), h, w), -1, 1).transpose(2, 0, 1)
    pad = margin * scale
    rows, cols = -(-(h + 2 * pad) // scale), -(-(w + 2 * pad) // scale)
    x = np.pad(content.transpose(2, 0, 1) * 2 - 1,
               ((0, 0), (pad, rows * scale - h - pad), (pad, cols * scale - w - pad)),
               mode="symmetric").astype(np.float32)
    cells = x.reshape(3, rows, scale, cols, scale)
    noise = Noise(layout, seed, (rows, cols))
    n_content = 3 * scale * scale

    def window(r: np.ndarray, c: np.ndarray) -> np.ndarray:
        """The tile's noise, its content cells packed into the last channels (as pack())."""
        z = noise.window(r, c, local=layout.n_local - n_content)
        z[0, layout.channels - n_content:] = cells[:, r][:, :, :, c].transpose(
            0, 2, 4, 1, 3).reshape(n_content, len(r), len(c))
        return z

    torus = np.array([rows, cols], np.float32)
    sink = ArraySink(3, h, w)
    axes = (Axis(rows * scale, rows * scale), Axis(cols * scale, cols * scale))
    render(lambda zt, ys, xs: run(zt, ys, xs, torus), TileInputs(window, layout.channels,
                                                                   (rows, cols)),
           scale, margin, axes, Window(pad, pad, w, h), sink, 3, tile, progress, cancel)
    return sink.array
