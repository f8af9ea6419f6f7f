"""Adversarial training of PSGAN/SGAN from one photo, several, or a folder (a texture manifold)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from texgen import checkpoint
from texgen.errors import TexgenError
from texgen.models.psgan import Discriminator, Generator, PSGANConfig, recalibrate_batchnorm
from texgen.runtime.maps import check_map_names, map_channels
from texgen.runtime.noise import sample_noise
from texgen.spectrum import dominant_frequencies
from texgen.train.common import run_iterations, save_exemplar_thumb, save_preview, start_point


@dataclass
class TrainConfig:
    iters: int = 3000
    batch: int = 8
    patch: int = 128            # px seen by the discriminator; a multiple of the model scale
    lr: float = 2e-4
    beta1: float = 0.5
    real_label: float = 0.9     # one-sided label smoothing: D never becomes certain
    d_skip_below: float = 0.1   # D sits out a step while its loss is this low (G catches up)
    preview_every: int = 250
    ckpt_every: int = 250
    seed: int = 0


# fast: a CPU laptop, ~15 minutes on 2 cores; full: the official PSGAN sizes, for a GPU
PRESETS = {
    "fast": (PSGANConfig(n_global=20, n_periodic=8, g_widths=(256, 128, 64, 32), d_widths=(32, 64, 128, 256)),
             TrainConfig(iters=3000, batch=8, patch=128)),
    "full": (PSGANConfig(), TrainConfig(iters=30000, batch=25, patch=160, preview_every=1000,
                                        ckpt_every=1000)),
}


def wave_init(images: list[np.ndarray], cfg: PSGANConfig, patch: int) -> list:
    """Start the waves at the exemplar's strongest periods (in radians per noise cell)."""
    f = dominant_frequencies(images[0], cfg.n_periodic, max_period=patch / 2)
    return (2 * math.pi * cfg.scale * f).T.tolist()      # (2, P): [k_y; k_x]


def train(images: list[np.ndarray], out: Path, model_cfg: PSGANConfig, cfg: TrainConfig,
          resume: bool = False, provenance: dict | None = None, log=print) -> Path:
    from texgen.data import PatchSampler

    out = Path(out)
    scale = model_cfg.scale
    if cfg.patch % scale:
        raise TexgenError(f"--patch must be a multiple of {scale} px (the model's cell size)")
    channels = images[0].shape[2]
    if resume:
        _, meta = checkpoint.load_model(out)
        model_cfg = PSGANConfig.from_dict(meta["config"])
        cfg = replace(TrainConfig(**meta["train"]), iters=cfg.iters)   # only --iters may change
        if model_cfg.channels != channels:
            raise TexgenError(f"{out} was trained on {model_cfg.channels}-channel images, not {channels}")
    else:
        stack = sum(map_channels(m) for m in check_map_names(model_cfg.maps))
        if stack != channels:   # the ONNX metadata will say which channel is which map
            raise TexgenError(f"the maps {', '.join(model_cfg.maps)} take {stack} channels, "
                              f"but the training images have {channels}")
        model_cfg = replace(model_cfg, channels=channels,
                            init_k=model_cfg.init_k or (wave_init(images, model_cfg, cfg.patch)
                                                        if model_cfg.n_periodic else None))
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(cfg.seed)
    G, D = Generator(model_cfg).to(dev), Discriminator(model_cfg).to(dev)
    opt_g = torch.optim.Adam(G.parameters(), cfg.lr, betas=(cfg.beta1, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), cfg.lr, betas=(cfg.beta1, 0.999))
    rng, start, meta = start_point(out, resume, cfg.seed, G, D, opt_g, opt_d, log)
    sampler = PatchSampler(images, cfg.patch, rng)
    out.mkdir(parents=True, exist_ok=True)
    save_exemplar_thumb(out / "exemplar.png", images)

    # G paints one extra noise cell on each side and we crop it: the discriminator then sees
    # no pixel that touches the training torus' own wrap (where unrounded waves jump), and
    # cannot win by spotting that seam.
    cells = cfg.patch // scale + 2
    info = {"config": model_cfg.to_dict(), "train": asdict(cfg),
            "provenance": provenance or {}}

    def paint_ready(it: int) -> Generator:
        """A copy of G with exact batch-norm statistics; training keeps its own."""
        G_eval = Generator(model_cfg)
        G_eval.load_state_dict(G.state_dict())
        recalibrate_batchnorm(G_eval, cells=cells, seed=it)
        return G_eval

    def save(it: int):
        info["iteration"], info["d_loss"] = it, d_val
        checkpoint.save_training(out, G, D, opt_g, opt_d, sampler.rng, info)
        G_eval = paint_ready(it)
        checkpoint.save_model(out, G_eval, info)
        save_preview(out / "preview.png", G_eval, images, model_cfg)

    d_val = meta["d_loss"] if resume else float("nan")
    d_skips = 0

    def one(it: int):
        nonlocal d_val, d_skips
        real = torch.from_numpy(sampler.sample(cfg.batch)).to(dev)
        z = torch.from_numpy(sample_noise(model_cfg.layout, cells, cells, sampler.rng,
                                          batch=cfg.batch)).to(dev)
        skipped = d_val < cfg.d_skip_below
        d_val, g_val = gan_step(G, D, opt_g, opt_d, real, z, cfg, d_val)
        d_skips += skipped
        return math.isfinite(g_val), {"D": d_val, "G": g_val, "skip": d_skips}

    run_iterations(one, start, cfg.iters, save,
                   lambda done: save_preview(out / "preview.png", paint_ready(done), images, model_cfg),
                   cfg.ckpt_every, cfg.preview_every, out, log, rng=sampler.rng)
    return out


def gan_step(G, D, opt_g, opt_d, real, z, cfg: TrainConfig, d_val: float) -> tuple[float, float]:
    """One discriminator and one generator update; returns their losses.

    The discriminator sits out a step while its loss is below cfg.d_skip_below (it is far
    ahead and would starve G of gradient); the next step measures it again. Losses are
    BCE-with-logits (no log(0)), and a non-finite loss skips its update instead of
    poisoning Adam's moments.
    """
    bce = F.binary_cross_entropy_with_logits
    s = G.cfg.scale
    fake = G(z)[..., s:-s, s:-s]          # drop the wrap-touched border cell (see train())

    if d_val < cfg.d_skip_below:
        d_val *= 2
    else:
        lr, lf = D(real), D(fake.detach())
        d_loss = bce(lr, torch.full_like(lr, cfg.real_label)) + bce(lf, torch.zeros_like(lf))
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        if torch.isfinite(d_loss):
            opt_d.step()
        d_val = d_loss.item()

    lf = D(fake)                          # generator: make D call the fakes real
    g_loss = bce(lf, torch.ones_like(lf))
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    if torch.isfinite(g_loss):
        opt_g.step()
    return d_val, g_loss.item()
