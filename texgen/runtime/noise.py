"""The noise tensor Z: the one definition shared by training, export, runtime and Blender.

Z has shape (batch, n_global + n_local + n_periodic, h, w), one cell per `scale` output pixels:

    channels [0, G)        global code: the same vector in every cell of a sample, or a spatial
                           blend of several codes when morphing across a canvas
    channels [G, G+L)      local noise: i.i.d. uniform(-1, 1) per cell
    channels [G+L, G+L+P)  wave phases: uniform(0, 2*pi) per sample, constant over space. The
                           generator turns them into sin(k . x + phase) with wave numbers k that
                           an MLP computes from the global channels (models/layers.PeriodicWaves)

A canvas is a torus of h x w cells. The whole Z for a canvas is drawn at once (it is 32x smaller
than the image on each side: 8192 px is 256 x 256 cells), so a tile of a big canvas simply
slices it: noise depends on the seed and the canvas size, never on how the canvas is tiled.

How a seed becomes numbers (numpy PCG64 via default_rng(seed)), in this order:
    1. global codes, shape (batch, G)
    2. local noise,  shape (batch, L, h, w)
    3. phases,       shape (batch, P)
Keep this order: changing it changes every image every user has made with a seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class NoiseLayout:
    n_global: int = 60
    n_local: int = 30
    n_periodic: int = 6

    @property
    def channels(self) -> int:
        return self.n_global + self.n_local + self.n_periodic

    @property
    def periodic_slice(self) -> slice:
        return slice(self.n_global + self.n_local, self.channels)


def draw_codes(layout: NoiseLayout, rng: np.random.Generator, batch: int) -> np.ndarray:
    """Global codes, (batch, G): one point of the texture manifold per sample."""
    return rng.uniform(-1.0, 1.0, (batch, layout.n_global)).astype(np.float32)


def sample_noise(
    layout: NoiseLayout,
    h: int,
    w: int,
    seed: int | np.random.Generator = 0,
    batch: int = 1,
    codes: np.ndarray | None = None,
    morph: np.ndarray | None = None,
) -> np.ndarray:
    """Draw Z for a batch of h x w-cell canvases.

    codes: optional (K, G) global codes to use instead of the drawn ones (K = 1 or batch, or
        K >= 2 together with `morph`).
    morph: optional (K, h, w) blend weights (summing to 1 per cell) that mix the K codes over
        space, so one canvas morphs between textures of a manifold model.
    """
    if h < 1 or w < 1:
        raise ValueError(f"noise canvas must be at least 1x1 cells, got {h}x{w}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    G, L, P = layout.n_global, layout.n_local, layout.n_periodic
    drawn = draw_codes(layout, rng, batch)                      # always drawn: keeps the stream
    local = rng.uniform(-1.0, 1.0, (batch, L, h, w)).astype(np.float32)
    phase = rng.uniform(0.0, 2 * np.pi, (batch, P)).astype(np.float32)

    z = np.empty((batch, layout.channels, h, w), np.float32)
    z[:, G:G + L] = local
    z[:, G + L:] = phase[:, :, None, None]
    if G:
        if morph is not None:
            if codes is None or len(codes) != len(morph):
                raise ValueError("morph needs one global code per blend-weight map")
            glob = np.einsum("kg,khw->ghw", np.asarray(codes, np.float32), morph.astype(np.float32))
            z[:, :G] = glob[None]
        else:
            c = drawn if codes is None else np.broadcast_to(np.asarray(codes, np.float32), (batch, G))
            z[:, :G] = c[:, :, None, None]
    return z


def cyclic_morph(h: int, w: int) -> np.ndarray:
    """Blend weights (2, h, w) that go from code A to code B and back across the width.

    A straight A-to-B ramp would put a seam where the right edge meets the left; a raised cosine
    keeps the canvas a torus, so a morphed texture still tiles.
    """
    x = np.arange(w, dtype=np.float32) / w
    b = 0.5 - 0.5 * np.cos(2 * np.pi * x)
    b = np.broadcast_to(b, (h, w))
    return np.stack([1.0 - b, b]).astype(np.float32)
