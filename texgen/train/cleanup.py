"""After training: paint with the best of the last checkpoints (the pick, PSGAN and texnet;
at the end of this file), then take a PSGAN's pixel-scale artefacts out of its output layer,
where that costs the texture nothing (the clean-up).

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

Then fine detail is brought toward the photo's, in steps, each kept only within the same
tolerance. Where the kept kernel's samples have more energy in the finest octave than the
photo's by over `fine_band` (eval's fine_energy over 1.2: speckle, tile01 1.22-1.72 at three
seeds), the kernel's smooth part is softened (models/layers.fine_soft_kernel); where less
(under 0.8: a blur, wood003 0.76, metal002 0.68), it is sharpened (unsharp masking with the
same); each up to the first step that comes into the band. Then, where the colour grain is
over the band (eval's chroma_energy: tile01 8.9 after that), only the colour less its
brightness loses its checkerboard and is softened (chroma_soft_kernel): half resolution's
cure by degrees, which cost tile01 0.6 % for 8.9 -> 0.7 where half resolution cost it 3 %,
and took wallpaper001's 107 -> 16 (benchmarks/out/quality_ab.md, the thirty-fifth session).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import torch

from texgen.eval import metrics as M
from texgen.eval.report import EvalConfig, exemplar_crops, sample_crops, with_crop
from texgen.eval.report import colour as colour_of   # reads .maps: a painter's, or a config's
from texgen.models.layers import (WrapConvTranspose2d, checker_free_kernel, chroma_soft_kernel,
                                  fine_soft_kernel, half_chroma_kernel)
from texgen.runtime.maps import map_slices

SEEDS = (101, 102, 103, 104)    # not eval's (1-4): what reports the choice did not make it
SIZE = EvalConfig.size          # eval's sample size
SOFTEN = (0.05, 0.1, 0.2, 0.4)  # fine_soft_kernel's alphas, in turn (0.4 took tile01's fine
                                # energy to 0.70 of the photo's, a blur, for 13 %, scouting)
SHARPEN = (0.25, 0.5, 1.0)      # sharpened's betas, in turn
SHARPEN_FROM = 0.2              # the blur it masks with
CHROMA_SOFTEN = (0.2, 1.0, 4.0)  # chroma_soft_kernel's alphas, in turn

CANDIDATES = {
    "colour at half resolution": half_chroma_kernel,
    "no checkerboard": lambda w, c: checker_free_kernel(w),
    "both": lambda w, c: half_chroma_kernel(checker_free_kernel(w), c),
}


def output_layer(G) -> WrapConvTranspose2d | None:
    """G's output layer when it is a plain 4x4 one (a derived layer already is a projection)."""
    layer = G.net[-2]
    return layer if type(layer) is WrapConvTranspose2d and layer.kernel_size == (4, 4) else None


class Judge:
    """Scores what a generator paints as eval scores it: texture_distance, fine_energy and
    chroma_energy (None for a grey photo) of its SIZE px samples at SEEDS, against the
    exemplar (H, W, C in [0, 1], the model's map stack). One judge for the pick and the
    clean-up: the same VGG-19, crops and target."""

    def __init__(self, exemplar: np.ndarray, maps):
        from texgen.models.vgg import VGG19
        from texgen.spectrum import clear_periods
        self.exemplar = exemplar[..., map_slices(maps)["color"]]
        self.periodic = len(clear_periods(self.exemplar)) > 0   # a lattice to keep
        self.vgg = VGG19(last="relu4_1")
        self.cfg = with_crop(EvalConfig(seeds=SEEDS, size=SIZE), (SIZE, SIZE), self.exemplar)
        self.target = M.gram_matrices(self.vgg, exemplar_crops(self.exemplar, self.cfg))

    @torch.no_grad()
    def __call__(self, G) -> dict:
        from texgen.train.common import paint_sample
        samples = [colour_of(G.cfg, paint_sample(G, G.cfg, SIZE, s)) for s in SEEDS]
        crops = [c for s in samples for c in sample_crops(s, self.cfg)]
        return {"texture_distance": M.texture_distance(self.target,
                                                       M.gram_matrices(self.vgg, crops)),
                "fine_energy": M.fine_energy(samples, self.exemplar),
                "chroma_energy": M.chroma_energy(samples, self.exemplar),
                "period_error": (M.period_error(self.exemplar, samples) if self.periodic
                                 else None)}


@torch.no_grad()
def clean_output(G, exemplar: np.ndarray, tolerance: float, log=print,
                 fine_band: float = 0.0, judge: Judge | None = None) -> dict:
    """Score the trained output kernel and each of CANDIDATES on `exemplar` (H, W, C in
    [0, 1], the model's map stack), keep the best one within tolerance (a fraction of the
    trained kernel's texture_distance) in G, then bring its fine detail, brightness and
    colour, toward the photo's where more than fine_band from it (0: never), in steps
    within the same tolerance, and return what was scored and kept."""
    layer, colour = output_layer(G), map_slices(G.cfg.maps).get("color")
    if layer is None or colour is None:
        return {"kept": "as trained", "why": "no plain 4x4 output layer, or no colour map"}
    judge = judge or Judge(exemplar, G.cfg.maps)
    trained = layer.weight.clone()

    def score(kernel: torch.Tensor) -> dict:
        """The judge's scores of what G paints with this output kernel."""
        layer.weight.copy_(kernel)
        return judge(G)

    kernels = {"as trained": trained,
               **{name: project(trained, colour) for name, project in CANDIDATES.items()}}
    scored = {}
    for name, kernel in kernels.items():
        scored[name] = score(kernel)
        if name != "as trained":
            log(f"clean-up: {name}: texture distance {scored[name]['texture_distance']:.4f} "
                f"(as trained {scored['as trained']['texture_distance']:.4f})")
    distance = {n: s["texture_distance"] for n, s in scored.items()}
    limit = (1 + tolerance) * distance["as trained"]
    within = {n: d for n, d in distance.items() if n != "as trained" and d <= limit}
    kept = min(within, key=within.get) if within else "as trained"
    log(f"clean-up: the output layer kept {kept}")
    kernel, now, steps = kernels[kept], scored[kept], {}

    def in_steps(what: str, step, amounts, inside) -> None:
        """kernel becomes step(kernel, amount) for each of amounts in turn, up to the first
        whose scores are inside the band, as long as texture_distance stays within limit."""
        nonlocal kernel, now
        start, tried, chosen = kernel, {}, 0.0
        for amount in amounts:
            candidate = step(start, amount)
            s = score(candidate)
            tried[str(amount)] = _rounded(s)
            grain = "" if s["chroma_energy"] is None else f", colour grain {s['chroma_energy']:.2f}"
            log(f"clean-up: {what} by {amount}: texture distance {s['texture_distance']:.4f}, "
                f"fine energy {s['fine_energy']:.2f}{grain} (of the photo's)")
            if s["texture_distance"] > limit:
                break
            kernel, now, chosen = candidate, s, amount
            if inside(s):
                break
        log(f"clean-up: {what} by {chosen}" if chosen else
            f"clean-up: {what}: not at all (its first step is over the tolerance)")
        steps[what] = {"amount": chosen, "tried": tried}

    if fine_band:
        high, low = 1 + fine_band, 1 - fine_band
        # the brightness's finest octave: softened where over the band, sharpened where under
        if now["fine_energy"] > high:
            in_steps("fine detail softened", fine_soft_kernel, SOFTEN,
                     lambda s: s["fine_energy"] <= high)
        elif now["fine_energy"] < low:
            in_steps("fine detail sharpened", sharpened, SHARPEN,
                     lambda s: s["fine_energy"] >= low)
        # the colour's: softened where over it (a grey photo has none to compare with: None)
        if (now["chroma_energy"] or 0) > high:
            in_steps("colour grain softened", lambda w, a: chroma_soft_kernel(w, colour, a),
                     CHROMA_SOFTEN, lambda s: s["chroma_energy"] <= high)
    layer.weight.copy_(kernel)
    return {"kept": kept, "scores": {n: _rounded(s) for n, s in scored.items()},
            "fine_band": fine_band, "steps": steps, "tolerance": tolerance, "seeds": list(SEEDS)}


def _rounded(scores: dict) -> dict:
    return {k: v if v is None else round(v, 5) for k, v in scores.items()}


def sharpened(w: torch.Tensor, beta: float) -> torch.Tensor:
    """The output kernel with its finest octave raised: unsharp masking, with
    fine_soft_kernel as the blur (w + beta * (w - the kernel softened by SHARPEN_FROM))."""
    return w + beta * (w - fine_soft_kernel(w, SHARPEN_FROM))


def clean_model(folder, images: list[np.ndarray], tolerance: float, log=print,
                fine_band: float = 0.0, judge: Judge | None = None) -> dict:
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
    record = clean_output(G, images[0], tolerance, log, fine_band, judge)
    stepped = any(step["amount"] for step in record.get("steps", {}).values())
    if record["kept"] == "as trained" and not stepped:
        checkpoint.update_model_info(folder, cleanup=record)
    else:
        checkpoint.save_model(folder, G, {**meta, "cleanup": record})
        save_preview(folder / "preview.png", G, images, G.cfg)
    return record


# ----------------------------------------------------------------------------- the pick

PICKS = "candidates"    # in a run's folder: the models of its last checkpoints, until picked
PERIOD_SLACK = 0.015    # a candidate whose period_error is further than this over the best
                        # one's is out (half eval's 3 % target): texture_distance barely sees
                        # a lattice a tenth too long (wall_brick01's 700: 0.1171, its 650 0.1162)


def candidate_file(folder, it: int) -> Path:
    return Path(folder) / PICKS / f"model_{it:05d}.safetensors"


def is_candidate(it: int, iters: int, cfg) -> bool:
    """Whether the pick considers the weights at iteration `it` of a run of `iters` (cfg: a
    PSGAN training config): the last cfg.pick_last multiples of cfg.pick_every before the
    end, counted from the end, the end's own included."""
    left = iters - it
    return (cfg.pick_last > 1 and left % cfg.pick_every == 0
            and 0 <= left < cfg.pick_last * cfg.pick_every)


def keep_candidate(folder, it: int) -> None:
    """Keep a copy of the model training just saved in `folder` at iteration `it`, one of the
    pick's candidates (the model file moves on with training)."""
    from texgen import checkpoint
    from texgen.files import atomic_write_bytes
    candidate_file(folder, it).parent.mkdir(exist_ok=True)
    atomic_write_bytes(candidate_file(folder, it), (Path(folder) / checkpoint.MODEL_FILE).read_bytes())


def choose(scores: dict[int, dict], margin: float) -> int:
    """The iteration that paints, of the candidates' judge scores by iteration: of those
    whose period_error (None: the photo has no clear period) is within PERIOD_SLACK of the
    lowest, the last, unless another's texture_distance is lower than the last's by more
    than `margin` (a fraction), then the lowest."""
    periods = [s["period_error"] for s in scores.values() if s.get("period_error") is not None]
    kept = [it for it, s in scores.items()
            if not periods or s["period_error"] <= min(periods) + PERIOD_SLACK]
    last = max(kept)
    best = min(kept, key=lambda it: scores[it]["texture_distance"])
    beats = scores[best]["texture_distance"] < (1 - margin) * scores[last]["texture_distance"]
    return best if beats else last


def ending_scores(cfg) -> int:
    """How many times the judge scores after a run of this training config: each of the
    pick's candidates, and a clean-up's usual count (the trained kernel, its projections
    and two steps; at most eleven: four softening steps and three of colour)."""
    cleanup = 1 + len(CANDIDATES) + 2
    return (cfg.pick_last if cfg.pick_last > 1 else 0) + (cleanup if _cleans(cfg) else 0)


def _cleans(cfg) -> bool:
    """Whether a run of this training config ends with the clean-up: PSGAN's, where its
    clean_within is set (a texnet's output layer is a 1x1 convolution: nothing to clean)."""
    return bool(getattr(cfg, "clean_within", 0.0))


def replan_to_end(cfg, deadline: float, done: int, pace: float, log, paint_ready,
                  images: list[np.ndarray]):
    """A run on a time budget (PSGAN's or texnet's) sets its length from its pace (common.
    replanned), less what its checkpoints and its end will take, timed here: a checkpoint
    (paint_ready(done): mostly a batch-norm measure), the pick's saves between them, and the
    end's judge scores (ending_cost). Returns the new config and the end's judge."""
    from texgen.train import common
    with torch.random.fork_rng(devices=[]):    # a new net's initial weights draw from it
        t0 = time.monotonic()
        G_eval = paint_ready(done)
        per_save = time.monotonic() - t0
        judge, ending = ending_cost(G_eval, images, cfg)
    every, picks = cfg.ckpt_every, max(0, cfg.pick_last - 1)   # picks: saves between
    cfg = common.replanned(cfg, deadline, done, pace, log, reserve=lambda iters: per_save * (
        common.saves_left(done, iters, every) + picks) + ending)
    return cfg, judge


def ending_cost(G, images: list[np.ndarray], cfg) -> tuple[Judge | None, float]:
    """For a run on a time budget: the judge its end will score with, built now, and the
    seconds the end's ending_scores will take, timed on G (the build counted: a VGG-19 load)."""
    scores = ending_scores(cfg)
    if not scores or len(images) != 1:      # a manifold is neither picked nor cleaned
        return None, 0.0
    t0 = time.monotonic()
    judge = Judge(images[0], G.cfg.maps)
    judge(G)
    return judge, (time.monotonic() - t0) * scores


def pick_model(folder, images: list[np.ndarray], log=print, candidates=None,
               margin: float = 0.0, judge: Judge | None = None) -> Judge | None:
    """The model in `folder` paints with the best of `candidates` (model files; by default
    the run's own, in folder/PICKS, which is then removed) by the judge (choose; `judge`:
    one built already for this photo). Its metadata stays the last checkpoint's (how far
    training went), with "painted" the picked iteration and "picked" every candidate's
    score. Returns the judge, for the clean-up that follows (None where nothing was scored:
    no candidates, or a manifold, whose model stays the last)."""
    from texgen import checkpoint
    from texgen.paint import load_generator
    from texgen.train.common import save_preview
    folder = Path(folder)
    files = sorted((folder / PICKS).glob("*.safetensors") if candidates is None else candidates)
    scores, files_at = {}, {}
    if len(images) == 1 and files:
        for f in files:
            G, meta = load_generator(f)
            judge = judge or Judge(images[0], G.cfg.maps)
            scores[meta["iteration"]] = judge(G)
            files_at[meta["iteration"]] = f
        best = choose(scores, margin)
        log("pick: " + ", ".join(f"at {it} texture distance {s['texture_distance']:.4f}"
                                 + ("" if s["period_error"] is None else
                                    f" (period error {s['period_error']:.3f})")
                                 for it, s in sorted(scores.items()))
            + f": the model paints with iteration {best}'s weights")
        G, meta = load_generator(files_at[best])
        last = checkpoint.load_model(folder)[1]
        kept = ("texture_distance", "period_error")
        record = {"iteration": best, "margin": margin, "seeds": list(SEEDS),
                  "scores": {str(it): _rounded({k: s[k] for k in kept})
                             for it, s in sorted(scores.items())}}
        painted = {"iteration": best, "score": meta.get("painted", {}).get("score")}
        checkpoint.save_model(folder, G, {**last, "painted": painted, "picked": record})
        save_preview(folder / "preview.png", G, images, G.cfg)
    if candidates is None:
        shutil.rmtree(folder / PICKS, ignore_errors=True)
    return judge


def finish(folder, images: list[np.ndarray], cfg, log=print, judge: Judge | None = None,
           candidates=None) -> None:
    """What runs after a PSGAN or texnet run's last iteration, as its training config asks:
    the pick (pick_model; candidates: model files, default the run's own), then PSGAN's
    clean-up (clean_model), with one judge (`judge`: one built already for this photo)."""
    if cfg.pick_last > 1:
        judge = pick_model(folder, images, log, candidates, cfg.pick_margin, judge)
    if _cleans(cfg):
        clean_model(folder, images, cfg.clean_within, log, cfg.clean_fine, judge)
