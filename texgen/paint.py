"""Paint with a trained PyTorch generator (the ONNX runtime does the same without torch)."""

from __future__ import annotations

import numpy as np
import torch

from texgen import checkpoint
from texgen.errors import TexgenError
from texgen.models.psgan import Generator, PSGANConfig
from texgen.runtime.canvas import check_paints_textures, synthesize
from texgen.runtime.maps import map_channels
from texgen.runtime.surface import Surface
from texgen.runtime.tiling import DEFAULT_TILE


def load_generator(path) -> tuple[Generator, dict]:
    """The generator of a model file: a PSGAN/SGAN Generator, or a TexNet (models/texnet.py)
    when the checkpoint says "model": "texnet" (methods texnet and stylize). Both have
    .cfg.layout, .cfg.scale, .cfg.maps, .margin and .interior, all the painters use."""
    tensors, meta = checkpoint.load_model(path)
    try:
        if meta.get("model") == "texnet":
            from texgen.models.texnet import TexNet, TexNetConfig
            G = TexNet(TexNetConfig.from_dict(meta["config"]))
        else:
            G = Generator(PSGANConfig.from_dict(meta["config"]))
        G.load_state_dict(tensors)
    except (KeyError, TypeError, RuntimeError) as e:
        raise TexgenError(f"{path}: weights do not match the model config ({str(e).splitlines()[0]})") from None
    return G.eval(), meta


def torch_runner(G: Generator):
    """run(z, ys, xs, torus) for runtime.tiling / runtime.canvas (it paints a tile's interior,
    see Generator.interior), on G's device."""
    dev = next(G.parameters()).device

    @torch.no_grad()
    def run(z, ys, xs, torus):
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(dev)
        was_training = G.training
        G.eval()
        out = G.interior(t(z), (t(ys), t(xs)), t(torus)).cpu().numpy()
        G.train(was_training)
        return out
    return run


@torch.no_grad()
def wave_numbers(G: Generator, seed: int) -> np.ndarray:
    """(P, 2) [k_y, k_x] radians per cell of the sample drawn by `seed` (mean over space)."""
    from texgen.runtime.noise import sample_noise
    if G.cfg.layout.n_periodic == 0:
        return np.zeros((0, 2), np.float32)
    z = torch.from_numpy(sample_noise(G.cfg.layout, 1, 1, seed=seed))
    k = G.waves.wave_numbers(z).mean(dim=(0, 2, 3)).numpy()
    P = G.cfg.n_periodic
    return np.stack([k[:P], k[P:]], axis=1)


class TorchPainter:
    """A trained PyTorch model with OnnxPainter's painting interface (layout, scale, margin,
    maps, paint), so code that evaluates or exports textures takes either."""

    def __init__(self, path):
        self.G, self.meta = load_generator(path)
        self.folder = checkpoint.model_path(path).parent
        cfg = self.G.cfg
        self.layout, self.scale, self.margin, self.maps = cfg.layout, cfg.scale, self.G.margin, list(cfg.maps)
        self.method = (self.meta.get("provenance") or {}).get("method", "psgan")
        self.surface = Surface.from_dict(self.meta.get("surface"))
        self.device, self.device_note = "cpu", ""       # PyTorch paints on the CPU here
        self.run = torch_runner(self.G)

    @property
    def channels(self) -> int:
        """Output channels of the image: 3 per colour or normal map, 1 per scalar map."""
        return sum(map_channels(m) for m in self.maps)

    def exemplar_png(self) -> bytes | None:
        """The training exemplar saved beside the weights (exemplar.png), or None."""
        png = self.folder / "exemplar.png"
        return png.read_bytes() if png.is_file() else None

    def paint(self, width: int, height: int, seed: int = 0, morph_seed: int | None = None,
              tile: int | None = DEFAULT_TILE, progress=None, cancel=None,
              out: np.ndarray | None = None, window=None) -> np.ndarray:
        """(channels, height, width) float32 in [-1, 1]; see runtime.canvas.synthesize."""
        check_paints_textures(self.method)
        return synthesize(self.run, self.layout, self.scale, self.margin, width, height,
                          seed=seed, morph_seed=morph_seed, tile=tile, progress=progress,
                          cancel=cancel, out=out, window=window)
