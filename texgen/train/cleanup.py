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

Then, where the kept kernel's samples still have more energy in the finest octave than
`fine_bound` times the photo's (eval's fine_energy over 1.2: speckle; tile01 1.22-1.72 at
three seeds), its smooth part is softened in steps (fine_soft_kernel, SOFTEN), up to the
first step that meets the bound, as far as the same tolerance allows. Softening sits apart
from the projections: tile01 needed it after "no checkerboard", and its 0.05 step brought
fine_energy 1.25 -> 0.99 at a texture cost of 1.7 % (benchmarks/out/quality_ab.md, the
thirty-fifth session).
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
                 fine_bound: float = 0.0) -> dict:
    """Score the trained output kernel and each of CANDIDATES on `exemplar` (H, W, C in
    [0, 1], the model's map stack), keep the best one within tolerance (a fraction of the
    trained kernel's texture_distance) in G, soften it where its fine_energy is over
    fine_bound (0: never), and return what was scored and kept."""
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
    kernel, fine_soft, softened = kernels[kept], 0.0, {}
    if fine_bound and fine[kept] > fine_bound:
        for alpha in SOFTEN:
            candidate = fine_soft_kernel(kernels[kept], alpha)
            d, f = score(candidate)
            softened[str(alpha)] = {"texture_distance": round(d, 5), "fine_energy": round(f, 3)}
            log(f"clean-up: fine detail softened by {alpha}: texture distance {d:.4f}, "
                f"fine energy {f:.2f} of the photo's (before: {fine[kept]:.2f})")
            if d > limit:
                break
            kernel, fine_soft = candidate, alpha
            if f <= fine_bound:
                break
        log(f"clean-up: fine detail softened by {fine_soft}" if fine_soft else
            "clean-up: fine detail left as it is (its first step is over the tolerance)")
    layer.weight.copy_(kernel)
    record = {"kept": kept, "texture_distance": {n: round(d, 5) for n, d in scores.items()},
              "fine_energy": {n: round(f, 3) for n, f in fine.items()},
              "tolerance": tolerance, "seeds": list(SEEDS)}
    if softened:
        record.update(fine_bound=fine_bound, fine_soft=fine_soft, softened=softened)
    return record


def clean_model(folder, images: list[np.ndarray], tolerance: float, log=print,
                fine_bound: float = 0.0) -> dict:
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
    record = clean_output(G, images[0], tolerance, log, fine_bound)
    if record["kept"] == "as trained" and not record.get("fine_soft"):
        checkpoint.update_model_info(folder, cleanup=record)
    else:
        checkpoint.save_model(folder, G, {**meta, "cleanup": record})
        save_preview(folder / "preview.png", G, images, G.cfg)
    return record
