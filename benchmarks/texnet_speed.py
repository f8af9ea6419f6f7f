"""Texture Networks (feed-forward) vs Gatys (pixel optimisation), side by side in one run:
wall time per image, peak memory and the Gram loss of each, on the same descriptor.

    python benchmarks/texnet_speed.py [--photos conc01.png ...] [--sizes 256 512]
                                      [--gatys-iters 200] [--train-iters 1000]

Writes benchmarks/out/texnet_speed.md and one picture per photo (exemplar | texnet | Gatys at
the largest size). Photos come from ../shared/data/textures/. Each photo needs a texnet: one
in benchmarks/models/texnet_<photo>/ is used, and resumed first if it has fewer than
--train-iters iterations (a new one is trained there with the fast preset, as `texgen train
PHOTO --method texnet` does).

Gatys runs for --gatys-iters loss evaluations (200 by default: by then its Gram loss is far
below that of a real crop of the photo; `texgen synth` does 300) and records its loss after
every one, so one run gives both comparisons:
  - against Gatys' final result: its time / texnet's, texnet's loss / its loss (the targets:
    >= 500x at 512 px, <= 1.5x);
  - at equal loss: how long Gatys took to first reach texnet's loss ("Gatys to match").

Every measurement runs in its own fresh process, so 'peak memory' is the peak resident set
of a process that does only that (Python, torch and, for Gatys, the VGG-19 included). Times
exclude start-up: model loading, and for Gatys the descriptor's set-up (VGG weights, the
exemplar's Grams); texnet is timed warm, the mean of 3 seeds, torch and onnxruntime.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
import multiprocessing as mp
import resource
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "textures"
MODELS = Path(__file__).resolve().parent / "models"
CURVE = (25, 50, 100, 200, 300, 500, 1000)      # Gatys' loss is shown after these evaluations


def _child(queue, fn, args):
    import torch
    torch.set_num_threads(2)
    out = fn(*args)
    out["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put(out)


def isolated(fn, *args) -> dict:
    """fn(*args) -> dict, run in a fresh process; adds its peak resident memory."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(q, fn, args))
    p.start()
    out = q.get()
    p.join()
    return out


def texnet_paint(model: str, size: int) -> dict:
    from texgen.painters import open_painter
    painter = open_painter(model, device="cpu")
    painter.paint(64, 64, seed=99, tile=None)                     # warm-up
    times, images = [], []
    for seed in range(3):
        t0 = time.perf_counter()
        images.append(painter.paint(size, size, seed=seed, tile=None))
        times.append(time.perf_counter() - t0)
    return {"seconds": float(np.mean(times)), "images": images}


def gatys(photo: str, size: int, iters: int) -> dict:
    from texgen.runtime.imageio import read_image
    from texgen.train.gatys import GatysConfig, synthesize
    from texgen.train.descriptor import DescriptorLoss
    loss_fn = DescriptorLoss([read_image(photo)])
    trace = []
    t0 = time.perf_counter()
    img, loss = synthesize(loss_fn, size, size, GatysConfig(iters=iters, seed=0), progress=False,
                           trace=trace)
    return {"seconds": time.perf_counter() - t0, "image": img, "loss": loss, "trace": trace}


def ensure_model(photo: Path, iters: int) -> tuple[Path, str]:
    """benchmarks/models/texnet_<photo>, trained (or resumed) to `iters` iterations."""
    from texgen import checkpoint
    from texgen.models.texnet import TexNetConfig
    from texgen.runtime.imageio import read_image
    from texgen.train.texnet import PRESETS, train
    folder = MODELS / f"texnet_{photo.stem}"
    have = 0
    if (folder / checkpoint.MODEL_FILE).is_file():
        have = checkpoint.load_model(folder)[1]["iteration"]
    if have < iters:
        train([read_image(photo)], folder, TexNetConfig(), replace(PRESETS["fast"], iters=iters),
              resume=have > 0, provenance={"method": "texnet", "exemplars": [photo.name]})
    _, meta = checkpoint.load_model(folder)
    t = meta["train"]
    return folder, f"{meta['iteration']} (batch {t['batch']}, {t['patch']} px tori, lr {t['lr']:g})"


def first_below(trace, loss: float) -> tuple[int, float] | None:
    """(evaluations, seconds) when Gatys' best loss first reached `loss`; None if never."""
    return next(((e, s) for e, s, v in trace if v <= loss), None)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", nargs="+", default=["conc01.png", "grass_lush.png", "wood003.png"])
    ap.add_argument("--sizes", nargs="+", type=int, default=[256, 512])
    ap.add_argument("--gatys-iters", type=int, default=200)
    ap.add_argument("--train-iters", type=int, default=1000)
    ap.add_argument("--out", default="benchmarks/out/texnet_speed.md")
    args = ap.parse_args()

    import torch
    from texgen.export.onnx_export import export_onnx
    from texgen.runtime.imageio import read_image, save_image
    from texgen.train.descriptor import DescriptorLoss
    torch.set_num_threads(2)
    load = open("/proc/loadavg").read().split()[:3] if Path("/proc/loadavg").exists() else "?"
    rows = ["| photo | size | method | iterations | s / image | peak MiB | Gram loss | "
            "Gatys time / this | this loss / Gatys' | Gatys to match: evals, s | speed-up at equal loss |",
            "|" + "---|" * 11]
    points = [n for n in CURVE if n < args.gatys_iters] + [args.gatys_iters]
    curve = ["| photo | size | " + " | ".join(f"{n}" for n in points) + " |", "|" + "---|" * (2 + len(points))]
    verdict = []
    found = [DATA / p for p in args.photos if (DATA / p).is_file()]
    if not found:
        raise SystemExit(f"none of {args.photos} in {DATA}")
    for photo in found:
        model, trained = ensure_model(photo, args.train_iters)
        onnx_file = MODELS / f"texnet_{photo.stem}.onnx"
        export_onnx(model, onnx_file)
        exemplar = read_image(photo)
        loss_fn = DescriptorLoss([exemplar])
        score = lambda img: loss_fn(torch.from_numpy(np.ascontiguousarray(
            img.transpose(2, 0, 1)))[None]).item()
        crop = min(exemplar.shape[0], exemplar.shape[1], 256)
        rows.append(f"| {photo.name} | {crop} | (a crop of the photo itself) | | | | "
                    f"{score(exemplar[:crop, :crop]):.4f} | | | | |")
        for size in args.sizes:
            g = isolated(gatys, str(photo), size, args.gatys_iters)
            rows.append(f"| {photo.name} | {size} | Gatys (L-BFGS) | {args.gatys_iters} | "
                        f"{g['seconds']:.3g} | {g['peak_mib']:.0f} | {g['loss']:.4f} | 1x | 1.00 | | |")
            curve.append(f"| {photo.name} | {size} | " + " | ".join(
                f"{g['trace'][n - 1][2]:.4f}" if n <= len(g["trace"]) else "" for n in points) + " |")
            for name, path in (("texnet, torch", model), ("texnet, onnxruntime", onnx_file)):
                t = isolated(texnet_paint, str(path), size)
                losses = [score(im.transpose(1, 2, 0) * 0.5 + 0.5) for im in t["images"]]
                loss, sec = float(np.mean(losses)), t["seconds"]
                match = first_below(g["trace"], loss)
                matched = (f"{match[0]}, {match[1]:.3g} | {match[1] / sec:.0f}x" if match
                           else f"not in {args.gatys_iters} | > {g['seconds'] / sec:.0f}x")
                rows.append(f"| {photo.name} | {size} | {name} | trained {trained} | {sec:.3g} | "
                            f"{t['peak_mib']:.0f} | {loss:.4f} ± {np.std(losses):.4f} | "
                            f"{g['seconds'] / sec:.0f}x | {loss / g['loss']:.2f} | {matched} |")
                last = t["images"][0]
                if size == 512 and path == onnx_file:
                    speed, ratio = g["seconds"] / sec, loss / g["loss"]
                    verdict.append(f"- {photo.name}: onnxruntime {speed:.0f}x faster than Gatys "
                                   f"({'met' if speed >= 500 else 'missed'}), loss {ratio:.2f}x "
                                   f"Gatys' ({'met' if ratio <= 1.5 else 'missed'})")
            print("\n".join(rows[-3:]), flush=True)
        side = args.sizes[-1]
        ex = np.asarray(exemplar[:side, :side])
        ex = np.pad(ex, ((0, side - ex.shape[0]), (0, side - ex.shape[1]), (0, 0)), constant_values=1)
        strip = np.concatenate([ex, last.transpose(1, 2, 0) * 0.5 + 0.5, g["image"]], axis=1)
        save_image(Path(args.out).with_name(f"texnet_speed_{photo.stem}.png"), strip)

    head = (f"# Texture Networks vs Gatys\n\n`python benchmarks/texnet_speed.py --photos "
            f"{' '.join(p.name for p in found)} --sizes {' '.join(map(str, args.sizes))} "
            f"--gatys-iters {args.gatys_iters} --train-iters {args.train_iters}`; torch "
            f"{torch.__version__}, 2 threads, CPU; load average at start {' '.join(load)} (other "
            f"jobs share this machine: every time is slower than on an idle one, the ratios less "
            f"so).\n\n"
            "Gram loss: texgen/train/descriptor.py (VGG-19 relu1_1..relu5_1, per-layer relative "
            "squared Gram error, mean over layers) against the whole photo's Grams; texnet's is "
            "the mean ± sd over 3 seeds. Times exclude model loading and the descriptor's set-up. "
            "Pictures: `texnet_speed_<photo>.png` (photo | texnet | Gatys, largest size). "
            f"Gatys stops after {args.gatys_iters} loss evaluations (L-BFGS line searches "
            "included). 'Gatys to match' is when its loss first fell to texnet's, and the "
            "speed-up at equal loss is that time over texnet's.\n\n")
    tail = ("\n\n## Gatys' loss after N evaluations (best so far, before its pixels are clamped to [0, 1])\n\n" + "\n".join(curve) +
            "\n\n## Targets at 512 px (>= 500x faster, loss <= 1.5x Gatys')\n\n" + "\n".join(verdict) + "\n")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(head + "\n".join(rows) + tail)
    print("\n".join(rows) + tail)


if __name__ == "__main__":
    main()
