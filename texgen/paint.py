"""Paint with a trained PyTorch generator (the ONNX runtime does the same without torch)."""

from __future__ import annotations

import numpy as np
import torch

from texgen import checkpoint
from texgen.errors import TexgenError
from texgen.kinds import FAMILY
from texgen.models.layers import WrapConvTranspose2d
from texgen.models.psgan import Generator, PSGANConfig
from texgen.runtime.canvas import PaintsTextures
from texgen.runtime.maps import map_channels
from texgen.runtime.noise import NOISE_VERSION
from texgen.runtime.surface import Surface


def load_generator(path) -> tuple[Generator, dict]:
    """The generator of a model file: a PSGAN/SGAN Generator, or a TexNet (models/texnet.py)
    for the kinds texnet and stylize (checkpoint.model_kind). Both have .cfg.kind,
    .cfg.layout, .cfg.scale, .cfg.maps, .margin and .interior, all the painters use."""
    tensors, meta = checkpoint.load_model(path)
    try:
        kind = checkpoint.model_kind(meta)
        config = {**meta["config"], "kind": kind}
        if FAMILY[kind] == "texnet":
            from texgen.models.texnet import TexNet, TexNetConfig
            G = TexNet(TexNetConfig.from_dict(config))
        else:
            G = Generator(PSGANConfig.from_dict(config))
        G.load_state_dict(tensors)
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
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
    from texgen.runtime.noise import Noise
    if G.cfg.layout.n_periodic == 0:
        return np.zeros((0, 2), np.float32)
    z = torch.from_numpy(Noise(G.cfg.layout, seed, (1, 1)).whole())
    k = G.waves.wave_numbers(z).mean(dim=(0, 2, 3)).numpy()
    P = G.cfg.n_periodic
    return np.stack([k[:P], k[P:]], axis=1)


def wave_strengths(G: Generator) -> np.ndarray:
    """(P,) how much each wave shows in the texture, 0..1: the weight norm of its sin and cos
    channels in the first layer, over the strongest wave's (a wave the generator learned to
    ignore scores near 0)."""
    P = G.cfg.layout.n_periodic
    if P == 0:
        return np.zeros(0)
    w = next(m for m in G.modules() if isinstance(m, WrapConvTranspose2d)).kernel()
    first = w.shape[0] - 2 * P                          # inputs: other noise, sin 0..P-1, cos
    per = w.detach().double().pow(2).sum(dim=(1, 2, 3)).numpy()
    s = np.sqrt(per[first:first + P] + per[first + P:first + 2 * P])
    return s / max(float(s.max()), 1e-12)


NOTE_DISTORTION = 0.05          # a wave stretched more than this (x its strength) is noted


def period_note(G: Generator, seed: int, width: int, height: int,
                tileable: bool = True) -> str | None:
    """One line for the user when rounding the waves to a width x height texture visibly
    changes a period (over NOTE_DISTORTION, weighted by wave_strengths), with the nearest
    size that holds whole periods; None when nothing would show."""
    from texgen.runtime.canvas import Canvas, period_distortions, whole_period_sizes
    k, weights = wave_numbers(G, seed), wave_strengths(G)
    if not len(k):
        return None
    scale, zoom = G.cfg.scale, G.cfg.zoom
    d = period_distortions(k, *Canvas(width, height, scale, tileable, zoom).cells)
    seen = d * weights
    worst = int(np.argmax(seen))
    if seen[worst] <= NOTE_DISTORTION:
        return None
    period = 2 * np.pi / max(float(np.hypot(*k[worst])), 1e-9) * scale / zoom
    better = whole_period_sizes(k, width, height, scale, tolerance=NOTE_DISTORTION,
                                tileable=tileable, weights=weights, zoom=zoom)
    hint = f"; --size {better[0]}x{better[1]} holds whole periods" if better else ""
    where = (f"to tile at {width}x{height}" if tileable else
             f"on the canvas the {width}x{height} texture is cut from")
    return (f"note: the texture's {period:.0f} px period is stretched or turned by "
            f"{d[worst]:.0%} {where}{hint}")


class TorchPainter(PaintsTextures):
    """A trained PyTorch model as a texgen.painters.Painter (the ONNX painter's twin), so code
    that evaluates or exports textures takes either; paint() is runtime.canvas's."""
    noise_version = NOISE_VERSION

    def __init__(self, path):
        self.G, self.meta = load_generator(path)
        self.folder = checkpoint.model_path(path).parent
        cfg = self.G.cfg
        self.layout, self.scale, self.margin, self.maps = cfg.layout, cfg.scale, self.G.margin, list(cfg.maps)
        self.zoom = cfg.zoom
        self.kind = cfg.kind
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
