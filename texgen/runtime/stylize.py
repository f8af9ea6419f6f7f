"""Stylise a content image with a stylisation network (models/texnet.py with content input),
in one shot or in tiles that give the same pixels: numpy only, for torch and ONNX painters.

The network reads per noise cell its noise, then the content's pixels of that cell packed
into channels (3 * scale**2 of them, the last channels of z; pack() is pixel_shuffle's
inverse). The content is mirrored outwards by the network's margin (and up to whole cells),
painted as a torus whose wrap the kept pixels never see, and cropped back: any size, odd or
not square, and borders that look like the rest.
"""

from __future__ import annotations

import numpy as np

from texgen.errors import TexgenError
from texgen.runtime.imageio import resize
from texgen.runtime.noise import NoiseLayout, sample_noise
from texgen.runtime.tiling import paint
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
    tile, progress, cancel: see tiling.paint. stroke_scale: the style's strokes and features
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
               mode="symmetric")
    z = content_noise(layout, x[None].astype(np.float32), scale, seed)
    torus = np.array([rows, cols], np.float32)
    img = paint(lambda zt, ys, xs: run(zt, ys, xs, torus), z, scale, margin, tile,
                progress=progress, cancel=cancel)
    return img[:, pad:pad + h, pad:pad + w]
