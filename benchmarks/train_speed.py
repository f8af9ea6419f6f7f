"""Seconds per training iteration of each preset, measured side by side in one run.

    python benchmarks/train_speed.py [--steps 10]

Writes benchmarks/out/train_speed.md. Times the real update (texgen.train.psgan.gan_step)
on random patches; checkpoints and previews (every 250 iterations) are not included.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from texgen.models.psgan import Discriminator, Generator
from texgen.runtime.noise import sample_noise
from texgen.train.psgan import PRESETS, gan_step

ap = argparse.ArgumentParser()
ap.add_argument("--steps", type=int, default=10)
ap.add_argument("--out", default="benchmarks/out/train_speed.md")
args = ap.parse_args()

rows = [f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{'cuda' if torch.cuda.is_available() else 'cpu'}", "",
        "| preset | G params | batch x patch | s / iteration | iterations | est. minutes |",
        "|---|---|---|---|---|---|"]
rng = np.random.default_rng(0)
for name, (mcfg, tcfg) in PRESETS.items():
    G, D = Generator(mcfg), Discriminator(mcfg)
    og = torch.optim.Adam(G.parameters(), tcfg.lr, betas=(tcfg.beta1, 0.999))
    od = torch.optim.Adam(D.parameters(), tcfg.lr, betas=(tcfg.beta1, 0.999))
    cells = tcfg.patch // mcfg.scale + 2
    times = []
    for i in range(args.steps + 2):
        real = torch.from_numpy(rng.uniform(-1, 1, (tcfg.batch, 3, tcfg.patch, tcfg.patch)).astype(np.float32))
        z = torch.from_numpy(sample_noise(mcfg.layout, cells, cells, rng, batch=tcfg.batch))
        t0 = time.perf_counter()
        gan_step(G, D, og, od, real, z, tcfg, float("nan"))
        times.append(time.perf_counter() - t0)
    t = float(np.median(times[2:]))                      # first steps warm up allocators
    n = sum(p.numel() for p in G.parameters())
    rows.append(f"| {name} | {n / 1e6:.2f} M | {tcfg.batch} x {tcfg.patch} | {t:.3f} | "
                f"{tcfg.iters} | {t * tcfg.iters / 60:.0f} |")
Path(args.out).parent.mkdir(parents=True, exist_ok=True)
Path(args.out).write_text("# Training speed\n\n" + "\n".join(rows) + "\n")
print("\n".join(rows))
