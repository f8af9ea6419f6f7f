"""Paint with a trained PyTorch generator (the ONNX runtime does the same without torch)."""

from __future__ import annotations

import numpy as np
import torch

from texgen import checkpoint
from texgen.errors import TexgenError
from texgen.models.psgan import Generator, PSGANConfig


def load_generator(path) -> tuple[Generator, dict]:
    tensors, meta = checkpoint.load_model(path)
    try:
        G = Generator(PSGANConfig.from_dict(meta["config"]))
        G.load_state_dict(tensors)
    except (KeyError, TypeError, RuntimeError) as e:
        raise TexgenError(f"{path}: weights do not match the model config ({str(e).splitlines()[0]})") from None
    return G.eval(), meta


def torch_runner(G: Generator):
    """run(z, ys, xs, torus) for runtime.tiling / runtime.canvas, on G's device."""
    dev = next(G.parameters()).device

    @torch.no_grad()
    def run(z, ys, xs, torus):
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(dev)
        was_training = G.training
        G.eval()
        out = G(t(z), (t(ys), t(xs)), t(torus)).cpu().numpy()
        G.train(was_training)
        return out
    return run


@torch.no_grad()
def wave_numbers(G: Generator, seed: int) -> np.ndarray:
    """(P, 2) [k_y, k_x] radians per cell of the sample drawn by `seed` (mean over space)."""
    from texgen.runtime.noise import sample_noise
    if G.cfg.n_periodic == 0:
        return np.zeros((0, 2), np.float32)
    z = torch.from_numpy(sample_noise(G.cfg.layout, 1, 1, seed=seed))
    k = G.waves.wave_numbers(z).mean(dim=(0, 2, 3)).numpy()
    P = G.cfg.n_periodic
    return np.stack([k[:P], k[P:]], axis=1)
