"""The seed browser: a grid of small previews, one per seed, as Blender icons.

Each preview is the corner of that seed's texture at the size the panel asks for, painted by
job.paint_previews through the same painter and canvas as Generate (a window of the same
torus), so what the artist clicks is what Generate paints. Nine 256 px windows take about
0.1 s on two CPU cores (benchmarks/out/blender_speed.md), so they are painted on the main
thread when the artist asks for them.
"""

from __future__ import annotations

import numpy as np

from . import icons, job

GRID = 9                    # previews shown at once (3 x 3)
_shown: dict = {"key": None, "seeds": []}   # what the grid shows: for which request, which seeds


def icon_name(k: tuple, seed: int) -> str:
    return f"seed {hash(k)}:{seed}"


def key(model, width: int, height: int, morph_seed: int | None) -> tuple:
    """What decides the previews' pixels besides the seed."""
    return (str(model), width, height, morph_seed)


def show(req: job.Request, seeds) -> list[int]:
    """Paint the seeds' previews into icons and make them the grid's; returns the seeds."""
    seeds = list(seeds)
    pixels = job.paint_previews(req, seeds)
    k = key(req.model, req.width, req.height, req.morph_seed)
    coll = icons.collection()
    for seed, rgb in pixels.items():
        name = icon_name(k, seed)
        icon = coll.get(name) or coll.new(name)
        h, w = rgb.shape[:2]
        rgba = np.concatenate([rgb, np.ones((h, w, 1), np.float32)], axis=2)[::-1]  # bottom-up
        icon.image_size = (w, h)
        icon.image_pixels_float.foreach_set(np.ascontiguousarray(rgba, np.float32).ravel())
    _shown["key"], _shown["seeds"] = k, seeds
    return seeds


def grid(k: tuple) -> list[tuple[int, int]]:
    """[(seed, icon id)] of the grid when it shows the textures of key k, else []."""
    coll = icons.collection()
    if coll is None or _shown["key"] != k:
        return []
    return [(s, coll[icon_name(k, s)].icon_id) for s in _shown["seeds"]
            if icon_name(k, s) in coll]


def forget() -> None:
    """The grid shows nothing (its icons go with the collection when unregistering)."""
    _shown["key"], _shown["seeds"] = None, []
