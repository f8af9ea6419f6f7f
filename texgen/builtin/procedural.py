"""Procedural exemplars for the built-in models: ours to ship, reproducible from a seed.

    python -m texgen.builtin.procedural bricks.png      # the bricks exemplar (and its width)

Their real-world size is known by construction: a brick course (BRICK px high) is a 65 mm
brick plus a 10 mm joint, so the wall's texel size is BRICK_COURSE_M / BRICK[1] metres per
pixel and the 576 px exemplar is 1.8 m wide (`texgen train --exemplar-width 1.8m`, as
README's rebuild commands give it).
"""

from __future__ import annotations

import sys

import numpy as np


def _smooth_noise(rng, h, w, cell):
    """Value noise on a torus: random lattice values, bilinearly interpolated, wrapping."""
    gh, gw = max(1, h // cell), max(1, w // cell)
    g = rng.standard_normal((gh, gw))
    y = np.arange(h) * gh / h
    x = np.arange(w) * gw / w
    y0, x0 = np.floor(y).astype(int), np.floor(x).astype(int)
    fy, fx = (y - y0)[:, None], (x - x0)[None, :]
    fy, fx = fy * fy * (3 - 2 * fy), fx * fx * (3 - 2 * fx)          # smoothstep
    a = g[y0 % gh][:, x0 % gw]
    b = g[y0 % gh][:, (x0 + 1) % gw]
    c = g[(y0 + 1) % gh][:, x0 % gw]
    d = g[(y0 + 1) % gh][:, (x0 + 1) % gw]
    return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy


def fbm(rng, h, w, octaves=(64, 32, 16, 8, 4, 2)):
    return sum(_smooth_noise(rng, h, w, c) * (c / octaves[0]) ** 0.6 for c in octaves)


BRICK = (64, 24)            # brick module (length, course height) in px, joint included
BRICK_COURSE_M = 0.075      # metres per course: a 65 mm brick and a 10 mm joint
BRICKS_SIZE = 576           # px: 9 bricks by 24 courses
BRICKS_TEXEL_SIZE = BRICK_COURSE_M / BRICK[1]           # 3.125 mm per pixel


def bricks(size: int = BRICKS_SIZE, seed: int = 0, brick=BRICK, mortar: int = 4) -> np.ndarray:
    """A tileable running-bond brick wall, size x size x 3 in [0, 1]."""
    rng = np.random.default_rng(seed)
    bw, bh = brick
    assert size % bw == 0 and size % (2 * bh) == 0, "whole bricks, so the wall tiles"
    y, x = np.mgrid[0:size, 0:size]
    row = y // bh
    xs = x + (row % 2) * (bw // 2)                                      # half-brick offset
    col = xs // bw
    n_rows, n_cols = -(-size // bh), size // bw + 1
    ids = (row % n_rows) * n_cols + (col % (size // bw))
    # per-brick colour: red-orange clay with darker and yellower bricks mixed in
    base = np.array([0.62, 0.30, 0.20])
    tint = rng.normal(0, 1, (n_rows * n_cols, 3)) * np.array([0.045, 0.03, 0.02])
    dark = rng.uniform(0.8, 1.05, n_rows * n_cols)[:, None]
    colour = np.clip((base + tint) * dark, 0, 1)[ids]
    # mortar: distance to the brick's edge, with a rough outline
    ey, ex = y % bh, xs % bw
    edge = np.minimum(np.minimum(ey, bh - 1 - ey), np.minimum(ex, bw - 1 - ex)).astype(float)
    rough = fbm(rng, size, size, (16, 8, 4, 2)) * 0.8
    mortar_mask = np.clip((mortar / 2 + 0.5 - edge + rough) / 1.5, 0, 1)[..., None]
    mortar_col = np.array([0.72, 0.70, 0.66]) * (1 + 0.08 * fbm(rng, size, size, (8, 4, 2)))[..., None]
    # surface: grain, stains and chipped spots on the bricks
    grain = 0.05 * fbm(rng, size, size, (8, 4, 2, 1))[..., None]
    stains = 0.08 * fbm(rng, size, size, (128, 64, 32))[..., None]
    shade = 1 - 0.25 * np.clip(1.5 - edge / 2.0, 0, 1)[..., None] * (1 - mortar_mask)
    img = colour * (1 + grain + stains) * shade
    img = img * (1 - mortar_mask) + mortar_col * mortar_mask
    return np.clip(img, 0, 1).astype(np.float32)


if __name__ == "__main__":
    from texgen.runtime.imageio import save_image
    out = sys.argv[1] if len(sys.argv) > 1 else "bricks.png"
    save_image(out, bricks())
    print(f"wrote {out}: {BRICKS_SIZE} px = {BRICKS_SIZE * BRICKS_TEXEL_SIZE:g} m wide "
          f"(texgen train {out} --exemplar-width {BRICKS_SIZE * BRICKS_TEXEL_SIZE:g}m ...)")
