"""Seam check as numbers: seam score of generated canvases vs the training photos.

    python benchmarks/seams.py MODEL [MODEL ...] [--photo PHOTO ...]

Writes benchmarks/out/seams.md. 1.0 = the wrap seam is like any pair of neighbouring pixels.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from texgen.eval.metrics import seam_score
from texgen.paint import load_generator, torch_runner
from texgen.runtime.canvas import synthesize
from texgen.runtime.imageio import read_image

ap = argparse.ArgumentParser()
ap.add_argument("models", nargs="+")
ap.add_argument("--photo", nargs="*", default=[])
ap.add_argument("--out", default="benchmarks/out/seams.md")
args = ap.parse_args()

def centre_score(img):
    """The same ratio for the pair of rows/columns across the middle: the control, since a
    single pair of lines varies with content (a mortar line may fall on it)."""
    h, w = img.shape[:2]
    return seam_score(np.roll(img, (h // 2, w // 2), axis=(0, 1)))


SEEDS = range(8)
rows = ["| what | size | seam score, wrap (mean / max over 8 seeds) | same ratio across the centre (control) |",
        "|---|---|---|---|"]
for m in args.models:
    G, _ = load_generator(m)
    for w, h in [(512, 512), (800, 480), (1000, 1000)]:
        imgs = [synthesize(torch_runner(G), G.cfg.layout, G.cfg.scale, G.margin, w, h,
                           seed=seed, tile=8).transpose(1, 2, 0) for seed in SEEDS]
        s = [seam_score(i) for i in imgs]
        c = [centre_score(i) for i in imgs]
        rows.append(f"| {Path(m).name} | {w}x{h} | {np.mean(s):.3f} / {np.max(s):.3f} "
                    f"| {np.mean(c):.3f} / {np.max(c):.3f} |")
for p in args.photo:
    im = read_image(p)
    rows.append(f"| photo {Path(p).name} | as is | {seam_score(im):.3f} | {centre_score(im):.3f} |")
Path(args.out).parent.mkdir(parents=True, exist_ok=True)
Path(args.out).write_text("# Seam scores\n\n" + "\n".join(rows) + "\n")
print("\n".join(rows))
