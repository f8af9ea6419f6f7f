"""Gatys, Ecker & Bethge (2015): synthesise one texture by optimising its pixels until their
VGG-19 Gram matrices match the exemplar's (train/descriptor.py). Slow (a VGG forward and
backward per step) but the quality reference the feed-forward Texture Networks are measured
against (benchmarks/texnet_speed.py).

Deterministic: the start is uniform noise from a numpy seed, and the loss is the same
function of the pixels every run. Not tileable: the pixels are a plain image, as in the paper.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from texgen.errors import TexgenError
from texgen.train.common import Progress
from texgen.train.descriptor import MIN_SIDE, DescriptorLoss

OPTIMIZERS = ("lbfgs", "adam")


@dataclass
class GatysConfig:
    iters: int = 300            # loss evaluations (L-BFGS line searches count theirs)
    optimizer: str = "lbfgs"    # lbfgs: the paper's, fast to converge; adam: steady, no line search
    lr: float = 0.02            # adam only: pixel step (pixels are in [0, 1])
    seed: int = 0


def synthesize(loss_fn: DescriptorLoss, width: int, height: int, cfg: GatysConfig = GatysConfig(),
               progress: bool = True, trace: list | None = None) -> tuple[np.ndarray, float]:
    """A height x width x 3 image in [0, 1] and its final texture loss. trace, if given,
    gets (evaluations, seconds since the start, best loss so far) after every evaluation:
    the benchmark reads Gatys' whole loss-against-time curve from one run."""
    if cfg.optimizer not in OPTIMIZERS:
        raise TexgenError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {cfg.optimizer!r}")
    if min(width, height) < MIN_SIDE:         # said before the progress bar starts
        raise TexgenError(f"size {width}x{height} is too small for the VGG-19 descriptor "
                          f"({MIN_SIDE} px a side at least)")
    dev = loss_fn.targets()[0].device
    start = np.random.default_rng(cfg.seed).uniform(0, 1, (1, 3, height, width)).astype(np.float32)
    x = torch.from_numpy(start).to(dev).requires_grad_(True)
    bar = Progress(total=cfg.iters, desc="gatys") if progress else None
    state = {"evals": 0, "loss": math.inf, "best": None}
    t0 = time.perf_counter()

    def closure():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(x).sum()
        loss.backward()
        value = loss.item()
        if not math.isfinite(value):        # no step on a NaN: keep the best image so far
            x.grad = torch.zeros_like(x)
        elif value < state["loss"]:
            state["loss"], state["best"] = value, x.detach().clone()
        state["evals"] += 1
        if trace is not None:
            trace.append((state["evals"], time.perf_counter() - t0, state["loss"]))
        if bar:
            bar.update(1, loss=value)
        return loss

    try:
        if cfg.optimizer == "lbfgs":
            opt = torch.optim.LBFGS([x], lr=1, max_iter=cfg.iters, max_eval=cfg.iters,
                                    history_size=50, tolerance_grad=0, tolerance_change=0,
                                    line_search_fn="strong_wolfe")
            opt.step(closure)
        else:
            opt = torch.optim.Adam([x], lr=cfg.lr)
            for _ in range(cfg.iters):
                opt.step(closure)
                with torch.no_grad():
                    x.clamp_(0, 1)
    finally:                                # an error or Ctrl-C: the bar ends its line first
        if bar:
            bar.close()
    if state["best"] is None:
        raise TexgenError("the optimisation produced no finite loss")
    best = state["best"].clamp(0, 1)
    with torch.no_grad():
        final = loss_fn(best).item()            # of the clamped pixels actually returned
    return best[0].cpu().numpy().transpose(1, 2, 0), final
