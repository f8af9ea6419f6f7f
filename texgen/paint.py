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
