"""Seconds per training iteration of each preset, measured side by side in one run.

    python benchmarks/train_speed.py [--steps 6]

Writes benchmarks/out/train_speed.md. Times the real update (psgan: train.psgan.gan_step,
texnet: train.texnet.step) on random patches, with the patch, batch, discriminator scales
and descriptor loss that training would choose for each exemplar: the built-in bricks (a
clear period: the patch grows to two bricks) and white noise (no period). Checkpoints and
previews are not included (texgen/train/speed.py, which `texgen train --minutes` and
benchmarks/quality.py size trainings with).
A second table times each texture loss (--loss gram|swd) in the fast presets against a
photo-sized (1024 px) exemplar, where swd has more exemplar features than a sample has.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from texgen.train.speed import seconds_per_step


LOSS_EXEMPLAR = 1024    # px


def main():
    from texgen.runtime.imageio import read_image
    from texgen.train.descriptor import LOSSES
    from texgen.train import psgan, texnet
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--presets", default="fast,full")
    ap.add_argument("--out", default="benchmarks/out/train_speed.md")
    args = ap.parse_args()
    exemplars = {"bricks": read_image(Path(psgan.__file__).parents[1] / "builtin/bricks/exemplar.png"),
                 "noise": np.random.default_rng(0).uniform(0, 1, (256, 256, 3)).astype(np.float32)}
    rows = [f"`python benchmarks/train_speed.py --steps {args.steps} --presets {args.presets}`: "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
            f"{'cuda' if torch.cuda.is_available() else 'cpu'}", "",
            "| method | preset | exemplar | batch x patch | s / iteration | iterations | est. minutes |",
            "|---|---|---|---|---|---|---|"]
    for name in args.presets.split(","):
        for ex, img in exemplars.items():
            mcfg, tcfg = psgan.PRESETS[name]
            p = psgan.plan([img], mcfg, tcfg)
            t = seconds_per_step("psgan", img, tcfg, mcfg, args.steps)
            rows.append(f"| psgan | {name} | {ex} | {p.batch} x {p.patch} | {t:.3f} | {tcfg.iters} | "
                        f"{t * tcfg.iters / 60:.0f} |")
            print(rows[-1], flush=True)
        tcfg = texnet.PRESETS[name]
        t = seconds_per_step("texnet", exemplars["noise"], tcfg, steps=args.steps)
        rows.append(f"| texnet | {name} | any | {tcfg.batch} x {tcfg.patch} | {t:.3f} | {tcfg.iters} | "
                    f"{t * tcfg.iters / 60:.0f} |")
        print(rows[-1], flush=True)
    rows += ["", "## Texture loss", "",
             f"The fast presets with each --loss, against {LOSS_EXEMPLAR} px noise (a photo's "
             "size; the descriptor's cost grows with the exemplar's features, not the table "
             "above's 256 px). x gram: over the same method's gram step, measured in this run.", "",
             "| method | loss | s / iteration | x gram | est. minutes |", "|---|---|---|---|---|"]
    big = np.random.default_rng(1).uniform(0, 1, (LOSS_EXEMPLAR, LOSS_EXEMPLAR, 3)).astype(np.float32)
    for method, (mcfg, tcfg) in (("psgan", psgan.PRESETS["fast"]), ("texnet", (None, texnet.PRESETS["fast"]))):
        gram = None
        for loss in LOSSES:                  # gram first: the others' yardstick
            t = seconds_per_step(method, big, replace(tcfg, loss=loss), mcfg, args.steps)
            gram = gram or t
            rows.append(f"| {method} | {loss} | {t:.3f} | {t / gram:.2f} | {t * tcfg.iters / 60:.0f} |")
            print(rows[-1], flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("# Training speed\n\n" + "\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
