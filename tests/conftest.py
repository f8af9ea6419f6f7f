"""Shared tiny models and images: every test here must stay fast on a busy 2-core machine."""

import numpy as np
import pytest
import torch

from texgen.train.batchnorm import calibrate_batchnorm
from texgen.models.psgan import Generator, PSGANConfig

# the test machine is small and shared: one thread per op avoids oversubscription
torch.set_num_threads(1)


def tiny_config(**kw) -> PSGANConfig:
    base = dict(n_global=4, n_local=4, n_periodic=2, wave_hidden=8,
                g_widths=(16, 8, 8, 8), d_widths=(8, 8, 8, 8))
    base.update(kw)
    return PSGANConfig(**base)


def seam_ratio(img: np.ndarray, axis: int) -> float:
    """Mean |last - first| along `axis` over the mean |neighbour difference| inside.

    About 1 for an image that wraps around; far above 1 where the edges do not meet.
    """
    a = np.moveaxis(np.asarray(img, np.float64), axis, -1)
    seam = np.abs(a[..., -1] - a[..., 0]).mean()
    inner = np.abs(np.diff(a, axis=-1)).mean()
    return float(seam / inner)


def stripes(h: int = 64, w: int = 64, period: float = 8.0, seed: int = 0) -> np.ndarray:
    """An H x W x 3 float32 image in [0, 1]: vertical stripes plus a little noise."""
    rng = np.random.default_rng(seed)
    x = np.arange(w, dtype=np.float32)
    s = 0.5 + 0.35 * np.sin(2 * np.pi * x / period)
    img = np.broadcast_to(s[None, :, None], (h, w, 3)).astype(np.float32)
    img = img + 0.1 * rng.random((h, w, 3), dtype=np.float32)
    img[..., 1] *= 0.8
    return np.clip(img, 0.0, 1.0).astype(np.float32)


@pytest.fixture(scope="session")
def tiny_cfg() -> PSGANConfig:
    return tiny_config()


@pytest.fixture(scope="session")
def tiny_G(tiny_cfg) -> Generator:
    """An untrained tiny PSGAN generator in eval mode with exact batch-norm statistics."""
    torch.manual_seed(0)
    G = Generator(tiny_cfg)
    calibrate_batchnorm(G, cells=3, batches=2, batch=2)
    return G.eval()
