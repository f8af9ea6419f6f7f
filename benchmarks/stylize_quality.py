"""A stylisation network trained on real photos: how far it moves each photo towards the
style's texture statistics, how much of the photo's content it keeps, and how fast it paints
photos of their own (any) size through onnxruntime, including photos it never saw.

    python benchmarks/stylize_quality.py --style floor_se01.png --content DIR
                                         [--hold-out coffee.png] [--iters 1000]

DIR holds the content photos, e.g. scikit-image's sample photos (not a texgen dependency):
    pip download scikit-image --no-deps -d /tmp/sk && unzip -j /tmp/sk/*.whl \\
        'skimage/data/astronaut.png' 'skimage/data/coffee.png' 'skimage/data/chelsea.png' \\
        'skimage/data/rocket.jpg' 'skimage/data/motorcycle_left.png' -d DIR
The style photo comes from ../shared/data/textures/. The network is trained (or resumed) in
benchmarks/models/stylize_<style>/ on every photo of DIR but the held-out ones, exactly as
`texgen train --method stylize --style S --content DIR --iters N` would (the fast preset). Writes benchmarks/out/stylize_quality.md and stylize_<style>.png
(content | stylised, one row per photo).

Texture loss: train/descriptor.py against the style (0: the style's statistics; the content
photo's own value is the 'before'). Content error: relative squared relu4_2 feature error,
||F(out) - F(photo)||^2 / ||F(photo)||^2 (0: the photo's content untouched).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "textures"
MODELS = Path(__file__).resolve().parent / "models"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--style", default="floor_se01.png")
    ap.add_argument("--content", required=True, help="folder of content photos")
    ap.add_argument("--hold-out", nargs="*", default=["coffee.png"])
    ap.add_argument("--iters", type=int, default=1000)
    ap.add_argument("--out", default="benchmarks/out/stylize_quality.md")
    args = ap.parse_args()

    import torch
    from texgen.export.onnx_export import export_onnx
    from texgen import checkpoint
    from texgen.data import IMAGE_SUFFIXES
    from texgen.models.texnet import TexNetConfig
    from texgen.painters import open_painter
    from texgen.runtime.imageio import read_image, save_image
    from texgen.runtime.stylize import stylize
    from texgen.models.vgg import CONTENT_LAYER
    from texgen.train.descriptor import DescriptorLoss
    from texgen.train.texnet import PRESETS, train
    load = open("/proc/loadavg").read().split()[:3] if Path("/proc/loadavg").exists() else ["?"]

    style_path = DATA / args.style
    photos = sorted(f for f in Path(args.content).iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    held = [p for p in photos if p.name in args.hold_out]
    seen = [p for p in photos if p.name not in args.hold_out]
    if not seen:
        raise SystemExit(f"no training photos in {args.content}")
    folder = MODELS / f"stylize_{style_path.stem}"
    have = checkpoint.load_model(folder)[1]["iteration"] if (folder / checkpoint.MODEL_FILE).is_file() else 0
    t0 = time.perf_counter()
    if have < args.iters:
        train([read_image(style_path)], folder, TexNetConfig(content=3),
              replace(PRESETS["fast"], iters=args.iters), content=[read_image(p) for p in seen],
              resume=have > 0, provenance={"method": "stylize", "exemplars": [style_path.name]})
    trained_s = time.perf_counter() - t0
    onnx_file = MODELS / f"stylize_{style_path.stem}.onnx"
    export_onnx(folder, onnx_file)
    meta = checkpoint.load_model(folder)[1]
    painter = open_painter(str(onnx_file), device="cpu")

    loss_fn = DescriptorLoss([read_image(style_path)])
    as_batch = lambda img: torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None]

    @torch.no_grad()
    def features(img):
        return loss_fn.features(as_batch(img), content=True)

    rows = ["| photo | seen in training | size | texture loss before | after | content error | "
            "s (onnxruntime) | Mpx/s |", "|" + "---|" * 8]
    strips = []
    for p in held + seen:
        photo = read_image(p)
        t = time.perf_counter()
        out = stylize(painter.run, painter.layout, painter.scale, painter.margin, photo, seed=0)
        sec = time.perf_counter() - t
        out = out.transpose(1, 2, 0) * 0.5 + 0.5
        f_photo, f_out = features(photo), features(out)    # VGG-19 once per image
        before, after = loss_fn.texture(f_photo).item(), loss_fn.texture(f_out).item()
        target = f_photo[CONTENT_LAYER]
        content = (((f_out[CONTENT_LAYER] - target) ** 2).sum() / (target ** 2).sum()).item()
        h, w = photo.shape[:2]
        rows.append(f"| {p.name} | {'no' if p in held else 'yes'} | {w}x{h} | {before:.3f} | "
                    f"{after:.3f} | {content:.3f} | {sec:.2f} | {h * w / sec / 1e6:.2f} |")
        print(rows[-1], flush=True)
        k = max(1, h // 256)
        strips.append(np.concatenate([photo[::k, ::k], out[::k, ::k]], axis=1))
    width = max(s.shape[1] for s in strips)
    sheet = np.concatenate([np.pad(s, ((0, 0), (0, width - s.shape[1]), (0, 0)), constant_values=1)
                            for s in strips], axis=0)
    save_image(Path(args.out).with_name(f"stylize_{style_path.stem}.png"), sheet)

    t = meta["train"]
    head = (f"# Stylisation on real photos\n\n`python benchmarks/stylize_quality.py --style "
            f"{args.style} --content DIR --hold-out {' '.join(args.hold_out)} --iters {args.iters}`"
            f"; style {args.style}, trained on {len(seen)} photos ({', '.join(p.name for p in seen)}) "
            f"for {meta['iteration']} iterations (batch {t['batch']}, {t['patch']} px crops, lr "
            f"{t['lr']:g}, content weight {t['content_weight']:g}; {trained_s / 60:.0f} min this run "
            f"on 2 CPU threads). Painted through onnxruntime on the CPU at each photo's own size, "
            f"seed 0, load average {' '.join(load)} at the start. Picture: `stylize_{style_path.stem}.png` (photo | stylised).\n\n"
            "Texture loss: Gram loss against the style (before: the photo itself). Content error: "
            "relative squared relu4_2 feature error against the photo.\n\n")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(head + "\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
