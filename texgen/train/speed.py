"""How long a training step takes here, and how many fit a budget (`texgen train --minutes`;
benchmarks/train_speed.py and quality.py time and size their trainings with it)."""

from __future__ import annotations

import math
import time
from dataclasses import replace

import numpy as np
import torch

from texgen.errors import TexgenError


def seconds_per_step(method: str, img: np.ndarray, tcfg, mcfg=None, steps: int = 4) -> float:
    """Median seconds of a training step of this configuration for this exemplar on this
    machine (after one warm-up step), with what training would choose for it (patch, batch,
    discriminator scales), on the device training runs on (CUDA when torch sees one, as
    train.psgan and train.texnet choose). Random patches stand in for the photo's; the
    spectrum, lattice and repeat terms (a few FFTs and means) are left out."""
    from texgen.runtime.maps import map_slices
    from texgen.runtime.noise import sample_noise
    from texgen.train.descriptor import DescriptorLoss
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def sync():         # CUDA runs asynchronously: a step is done when its kernels are
        if dev.type == "cuda":
            torch.cuda.synchronize()

    rng = np.random.default_rng(0)
    times = []
    if method in ("psgan", "sgan"):
        from texgen.models.psgan import Discriminator, Generator
        from texgen.train.psgan import gan_step, plan
        p = plan([img], mcfg, tcfg)
        m, t = replace(mcfg, d_scales=p.d_scales), replace(tcfg, patch=p.patch, batch=p.batch)
        G, D = Generator(m).to(dev), Discriminator(m).to(dev)
        og, od = torch.optim.Adam(G.parameters()), torch.optim.Adam(D.parameters())
        colour = img[..., map_slices(m.maps)["color"]]
        desc = DescriptorLoss([colour], kind=t.loss, device=dev) if t.descriptor_weight else None
        cells = t.patch // m.scale + 2 * G.margin
        for i in range(steps + 1):
            real = torch.from_numpy(rng.uniform(-1, 1, (t.batch, m.channels, t.patch, t.patch))
                                    .astype(np.float32)).to(dev)
            z = torch.from_numpy(sample_noise(m.layout, cells, cells, rng, batch=t.batch)).to(dev)
            sync()
            t0 = time.perf_counter()
            gan_step(G, D, og, od, real, z, t, 1.0, i, desc, rng)
            sync()
            times.append(time.perf_counter() - t0)
    elif method == "texnet":
        from texgen.models.texnet import TexNet, TexNetConfig
        from texgen.train.texnet import step
        G = TexNet(TexNetConfig()).to(dev)
        opt = torch.optim.Adam(G.parameters())
        loss_fn = DescriptorLoss([img], kind=tcfg.loss, device=dev)
        cells = tcfg.patch // G.cfg.scale
        for i in range(steps + 1):
            z = torch.from_numpy(sample_noise(G.cfg.layout, cells, cells, rng, batch=tcfg.batch)).to(dev)
            sync()
            t0 = time.perf_counter()
            step(G, loss_fn, opt, z, None, tcfg, rng=rng)
            sync()
            times.append(time.perf_counter() - t0)
    else:
        raise TexgenError(f"no step timing for --method {method}")
    return float(np.median(times[1:]))


def iterations_within(minutes: float, seconds: float) -> int:
    """Whole training steps of `seconds` in `minutes` (at least one, even in none)."""
    return max(1, math.floor(minutes * 60 / seconds))


def iterations_by(deadline: float, done: int, pace: float) -> int:
    """done + the steps of `pace` seconds left before `deadline` (a time.monotonic()), at
    least 2 done + 2: the steps done stay in the first half (common.replan_point)."""
    return max(2 * done + 2, done + iterations_within((deadline - time.monotonic()) / 60, pace))
