"""After training: take a PSGAN's pixel-scale artefacts out of its output layer, where that
costs the texture nothing.

The last transposed convolution gives each colour channel, and each of the four output
phases (row and column parity), its own mix of the hidden features. Two faults come of it
that neither the discriminator nor the VGG-19 loss charges: a per-pixel colour grain
(eval's chroma_energy: tile01 27x the photo's) and a 1 px checkerboard (checker_energy:
tile01 7.7x). Each has a projection of the trained kernel that cannot paint it
(models/layers: half_chroma_kernel, checker_free_kernel). Trained in (the half_chroma option,
and a resize-convolution output layer) they cost most photos texture; applied to the trained
kernel they cost some photos nothing and others much (wall_brick01's mortar, wallpaper001's
honeycomb: benchmarks/out/quality_ab.md, nineteenth session). So each is scored on the exemplar, as
eval scores it (texture_distance of four 512 px samples, at seeds of its own), and kept
only within `tolerance` of the trained kernel's distance; of several, the lowest.

Then, where the kept kernel's samples have more energy in the finest octave than the
photo's by over `fine_band` (eval's fine_energy over 1.2: speckle, tile01 1.22-1.72 at three
seeds), its smooth part is softened in steps (models/layers.fine_soft_kernel); where they
have less by over it (under 0.8: a blur, wood003 0.76, metal002 0.68), the kernel is
sharpened (unsharp masking with the same); each up to the first step that comes into the
band, as far as the same tolerance allows. tile01's fine_energy came to 1.03 for 0.5 % of
texture_distance (benchmarks/out/quality_ab.md, the thirty-fifth session).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from texgen.eval import metrics as M
from texgen.eval.report import EvalConfig, exemplar_crops, sample_crops, with_crop
from texgen.eval.report import colour as colour_of   # reads .maps: a painter's, or a config's
from texgen.models.layers import (WrapConvTranspose2d, checker_free_kernel, fine_soft_kernel,
                                  half_chroma_kernel)
from texgen.runtime.maps import map_slices

SEEDS = (101, 102, 103, 104)    # not eval's (1-4): what reports the choice did not make it
SIZE = EvalConfig.size          # eval's sample size
SOFTEN = (0.05, 0.1, 0.2, 0.4)  # fine_soft_kernel's alphas, in turn: 0.4 took tile01's fine
                                # energy to 0.70 of the photo's, a blur, for 13 %
SHARPEN = (0.25, 0.5, 1.0)      # sharpened's betas, in turn
SHARPEN_FROM = 0.2              # the blur it masks with

CANDIDATES = {
    "colour at half resolution": half_chroma_kernel,
    "no checkerboard": lambda w, c: checker_free_kernel(w),
    "both": lambda w, c: half_chroma_kernel(checker_free_kernel(w), c),
}


def output_layer(G) -> WrapConvTranspose2d | None:
    """G's output layer when it is a plain 4x4 one (a derived layer already is a projection)."""
    layer = G.net[-2]
    return layer if type(layer) is WrapConvTranspose2d and layer.kernel_size == (4, 4) else None


@torch.no_grad()
def clean_output(G, exemplar: np.ndarray, tolerance: float, log=print,
                 fine_band: float = 0.0) -> dict:
    """Score the trained output kernel and each of CANDIDATES on `exemplar` (H, W, C in
    [0, 1], the model's map stack), keep the best one within tolerance (a fraction of the
    trained kernel's texture_distance) in G, soften or sharpen it where its fine_energy is
    more than fine_band from the photo's (fine_steps; 0: never), and return what was scored
    and kept."""
    from texgen.models.vgg import VGG19
    from texgen.train.common import paint_sample
    layer, colour = output_layer(G), map_slices(G.cfg.maps).get("color")
    if layer is None or colour is None:
        return {"kept": "as trained", "why": "no plain 4x4 output layer, or no colour map"}
    vgg, exemplar = VGG19(last="relu4_1"), exemplar[..., colour]
    cfg = with_crop(EvalConfig(seeds=SEEDS, size=SIZE), (SIZE, SIZE), exemplar)
    target = M.gram_matrices(vgg, exemplar_crops(exemplar, cfg))
    trained = layer.weight.clone()

    def score(kernel: torch.Tensor) -> tuple[float, float]:
        """texture_distance and fine_energy of the samples G paints with this kernel."""
        layer.weight.copy_(kernel)
        samples = [colour_of(G.cfg, paint_sample(G, G.cfg, SIZE, s)) for s in SEEDS]
        crops = [c for s in samples for c in sample_crops(s, cfg)]
        return (M.texture_distance(target, M.gram_matrices(vgg, crops)),
                M.fine_energy(samples, exemplar))

    kernels = {"as trained": trained,
               **{name: project(trained, colour) for name, project in CANDIDATES.items()}}
    scores, fine = {}, {}
    for name, kernel in kernels.items():
        scores[name], fine[name] = score(kernel)
        if name != "as trained":
            log(f"clean-up: {name}: texture distance {scores[name]:.4f} "
                f"(as trained {scores['as trained']:.4f})")
    limit = (1 + tolerance) * scores["as trained"]
    within = {n: d for n, d in scores.items() if n != "as trained" and d <= limit}
    kept = min(within, key=within.get) if within else "as trained"
    log(f"clean-up: the output layer kept {kept}")
    kernel, record = kernels[kept], {}
    if fine_band and abs(fine[kept] - 1) > fine_band:
        kernel, record = fine_steps(kernels[kept], fine[kept], fine_band, score, limit, log)
    layer.weight.copy_(kernel)
    return {"kept": kept, "texture_distance": {n: round(d, 5) for n, d in scores.items()},
            "fine_energy": {n: round(f, 3) for n, f in fine.items()},
            "tolerance": tolerance, "seeds": list(SEEDS), **record}


def sharpened(w: torch.Tensor, beta: float) -> torch.Tensor:
    """The output kernel with its finest octave raised: unsharp masking, with
    fine_soft_kernel as the blur (w + beta * (w - the kernel softened by SHARPEN_FROM))."""
    return w + beta * (w - fine_soft_kernel(w, SHARPEN_FROM))


def fine_steps(kernel, fine: float, band: float, score, limit: float, log) -> tuple:
    """kernel softened (samples with over 1 + band times the photo's fine energy) or
    sharpened (under 1 - band) in steps, up to the first step that comes into the band, as
    long as texture_distance stays within limit; -> (the kernel kept, what was tried)."""
    soften = fine > 1 + band
    how, steps, step = ("softened", SOFTEN, fine_soft_kernel) if soften else \
        ("sharpened", SHARPEN, sharpened)
    kept, tried, chosen = kernel, {}, 0.0
    for amount in steps:
        candidate = step(kernel, amount)
        d, f = score(candidate)
        tried[str(amount)] = {"texture_distance": round(d, 5), "fine_energy": round(f, 3)}
        log(f"clean-up: fine detail {how} by {amount}: texture distance {d:.4f}, "
            f"fine energy {f:.2f} of the photo's (before: {fine:.2f})")
        if d > limit:
            break
        kept, chosen = candidate, amount
        if (f <= 1 + band) if soften else (f >= 1 - band):
            break
    log(f"clean-up: fine detail {how} by {chosen}" if chosen else
        "clean-up: fine detail left as it is (its first step is over the tolerance)")
    return kept, {"fine_band": band, how: chosen, "fine_steps": tried}


def clean_model(folder, images: list[np.ndarray], tolerance: float, log=print,
                fine_band: float = 0.0) -> dict:
    """clean_output on the model a training run saved in `folder`, written back (atomically,
    as every save) with what was scored and kept in its metadata under "cleanup"."""
    from texgen import checkpoint
    from texgen.paint import load_generator
    from texgen.train.common import save_preview
    folder = Path(folder)
    if len(images) != 1:
        log("clean-up: skipped (a manifold: no one photo to score against)")
        return {"kept": "as trained", "why": "several training photos"}
    G, meta = load_generator(folder)
    record = clean_output(G, images[0], tolerance, log, fine_band)
    if record["kept"] == "as trained" and not (record.get("softened") or record.get("sharpened")):
        checkpoint.update_model_info(folder, cleanup=record)
    else:
        checkpoint.save_model(folder, G, {**meta, "cleanup": record})
        save_preview(folder / "preview.png", G, images, G.cfg)
    return record
