"""Texture Networks (feed-forward) vs Gatys (pixel optimisation), side by side in one run:
wall time per image, peak memory and the Gram loss of each, on the same descriptor.

    python benchmarks/texnet_speed.py [--photos conc01.png ...] [--sizes 256 512]
                                      [--gatys-iters 100] [--train-iters 300]

Writes benchmarks/out/texnet_speed.md and one picture per photo (exemplar | texnet | Gatys at
the largest size). Photos come from ../shared/data/textures/. Each photo needs a texnet: one
in benchmarks/models/texnet_<photo>/ is used as it is (its iteration count is reported), else
one is trained there first (--train-iters, batch 2, 128 px tori, lr 2e-3).

Every measurement runs in its own fresh process, so 'peak memory' is the peak resident set
of a process that does only that (Python, torch and, for Gatys, the VGG-19 included). Times
exclude start-up: model loading, and for Gatys the descriptor's set-up (VGG weights, the
exemplar's Grams); texnet is timed warm, the mean of 3 seeds, torch and onnxruntime.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "textures"
MODELS = Path(__file__).resolve().parent / "models"


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
    from texgen.train.gram_loss import GramLoss
    loss_fn = GramLoss([read_image(photo)])
    t0 = time.perf_counter()
    img, loss = synthesize(loss_fn, size, size, GatysConfig(iters=iters, seed=0), progress=False)
    return {"seconds": time.perf_counter() - t0, "image": img, "loss": loss}


def ensure_model(photo: Path, iters: int) -> tuple[Path, int]:
    from texgen import checkpoint
    folder = MODELS / f"texnet_{photo.stem}"
    if not (folder / checkpoint.MODEL_FILE).is_file():
        from texgen.models.texnet import TexNetConfig
        from texgen.runtime.imageio import read_image
        from texgen.train.texnet import TexNetTrainConfig, train
        train([read_image(photo)], folder, TexNetConfig(),
              TexNetTrainConfig(iters=iters, batch=2, patch=128, lr=2e-3, ckpt_every=50,
                                preview_every=50),
              provenance={"method": "texnet", "exemplars": [photo.name]})
    _, meta = checkpoint.load_model(folder)
    t = meta["train"]
    return folder, (f"{meta['iteration']} (batch {t['batch']}, {t['patch']} px tori, lr {t['lr']:g})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", nargs="+", default=["conc01.png"])
    ap.add_argument("--sizes", nargs="+", type=int, default=[256, 512])
    ap.add_argument("--gatys-iters", type=int, default=100)
    ap.add_argument("--train-iters", type=int, default=300)
    ap.add_argument("--out", default="benchmarks/out/texnet_speed.md")
    args = ap.parse_args()

    import torch
    from export.onnx_export import export_onnx
    from texgen.runtime.imageio import read_image, save_image
    from texgen.train.gram_loss import GramLoss
    torch.set_num_threads(2)
    load = open("/proc/loadavg").read().split()[:3] if Path("/proc/loadavg").exists() else "?"
    rows = ["| photo | size | method | iterations | s / image | peak MiB | Gram loss | "
            "Gatys time / this | this loss / Gatys' |", "|" + "---|" * 9]
    found = [DATA / p for p in args.photos if (DATA / p).is_file()]
    if not found:
        raise SystemExit(f"none of {args.photos} in {DATA}")
    for photo in found:
        model, trained = ensure_model(photo, args.train_iters)
        onnx_file = MODELS / f"texnet_{photo.stem}.onnx"
        export_onnx(model, onnx_file)
        exemplar = read_image(photo)
        loss_fn = GramLoss([exemplar])
        score = lambda img: loss_fn(torch.from_numpy(np.ascontiguousarray(
            img.transpose(2, 0, 1)))[None]).item()
        crop = min(exemplar.shape[0], exemplar.shape[1], 256)
        rows.append(f"| {photo.name} | {crop} | (a crop of the photo itself) | | | | "
                    f"{score(exemplar[:crop, :crop]):.4f} | | |")
        for size in args.sizes:
            g = isolated(gatys, str(photo), size, args.gatys_iters)
            results = [("Gatys (L-BFGS)", args.gatys_iters, g["seconds"], g["peak_mib"], g["loss"])]
            for name, path in (("texnet, torch", model), ("texnet, onnxruntime", onnx_file)):
                t = isolated(texnet_paint, str(path), size)
                loss = float(np.mean([score(im.transpose(1, 2, 0) * 0.5 + 0.5) for im in t["images"]]))
                results.append((name, f"trained {trained}", t["seconds"], t["peak_mib"], loss))
                last = t["images"][0]
            for name, its, sec, peak, loss in results:
                rows.append(f"| {photo.name} | {size} | {name} | {its} | {sec:.3g} | {peak:.0f} | "
                            f"{loss:.4f} | {g['seconds'] / sec:.0f}x | {loss / g['loss']:.2f} |")
            print("\n".join(rows[-3:]), flush=True)
        side = args.sizes[-1]
        ex = np.asarray(exemplar[:side, :side])
        ex = np.pad(ex, ((0, side - ex.shape[0]), (0, side - ex.shape[1]), (0, 0)), constant_values=1)
        strip = np.concatenate([ex, last.transpose(1, 2, 0) * 0.5 + 0.5, g["image"]], axis=1)
        save_image(Path(args.out).with_name(f"texnet_speed_{photo.stem}.png"), strip)

    head = (f"# Texture Networks vs Gatys\n\n`python benchmarks/texnet_speed.py` "
            f"(photos {', '.join(p.name for p in found)}); torch {torch.__version__}, 2 threads, "
            f"CPU; load average at start {' '.join(load)} (other jobs share this machine: every "
            f"time is slower than on an idle one, the ratios less so).\n\n"
            "Gram loss: texgen/train/gram_loss.py (VGG-19 relu1_1..relu5_1, per-layer relative "
            "squared Gram error, mean over layers) against the whole photo's Grams; texnet's is "
            "the mean over 3 seeds. Times exclude model loading and the descriptor's set-up. "
            "Pictures: `texnet_speed_<photo>.png` (photo | texnet | Gatys, largest size). "
            f"Gatys stops after {args.gatys_iters} loss evaluations (L-BFGS line searches "
            "included): more lowers its loss and raises its time in proportion.\n\n")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(head + "\n".join(rows) + "\n")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
