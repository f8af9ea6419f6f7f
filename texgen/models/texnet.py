"""Texture Networks (Ulyanov, Lebedev, Vedaldi & Lempitsky 2016): a feed-forward multi-scale
generator trained with the Gram loss of a fixed VGG-19 (train/texnet.py), and its
content-conditioned form for stylisation.

Noise enters at `levels` resolutions, 1/scale .. 1 of the output (scale = 2**(levels-1)).
Each level's noise goes through a conv block (3x3, 3x3, 1x1 convs, each followed by batch
norm and LeakyReLU); the trunk, coarsest first, is upsampled 2x (nearest), batch-normed and
joined (channel concatenation) with the next level's branch, then another block; a 1x1 conv
and tanh make the image. Every conv wraps around, so the image is a torus.

How it fits the runtime's noise (runtime/noise.py) and tiles (runtime/tiling.py): one noise
cell is `scale` px, and all of a cell's noise lives in its channels: level j (2**j values per
cell side) takes noise * 4**j channels, unpacked to its resolution by pixel_shuffle (space to
depth in reverse). So the layout is NoiseLayout(0, channels, 0), the noise of any tile is a
slice of the torus' noise, and a seed means the same image in torch and ONNX, tiled or not.

Stylisation (cfg.content = 3): the content image, in [-1, 1] and packed the same way
(3 * scale**2 channels per cell, after the noise), is average-pooled to each level and joins
that level's noise, as in the paper's stylisation network.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from texgen.models.layers import WrapConv2d
from texgen.kinds import check_kind, kind_of
from texgen.runtime.noise import NoiseLayout

SLOPE = 0.01        # LeakyReLU slope of the paper's code


@dataclass
class TexNetConfig:
    levels: int = 6             # noise resolutions 1/32 .. 1 of the output: a cell is 32 px
    noise: int = 3              # noise channels per level
    width: int = 8              # channels of each branch; the trunk grows by this per join
    channels: int = 3           # output channels
    maps: list = field(default_factory=lambda: ["color"])   # what the channels mean, in order
    content: int = 0            # content image channels (3: stylisation; 0: texture)
    kind: str | None = None     # "texnet" or "stylize" (texgen/kinds.py); None: what content says

    def __post_init__(self):
        self.kind = check_kind(kind_of(asdict(self), "texnet"), "texnet")
        if (self.kind == "stylize") != bool(self.content):
            raise ValueError(f"a {self.kind} network has {'no ' if self.content else ''}content "
                             f"channels, not {self.content}")

    @property
    def scale(self) -> int:
        """Output pixels per noise cell."""
        return 2 ** (self.levels - 1)

    @property
    def zoom(self) -> float:
        """Model px per texture px (PSGANConfig.zoom): a texnet paints at its exemplar's."""
        return 1.0

    @property
    def noise_channels(self) -> int:
        return self.noise * sum(4 ** j for j in range(self.levels))

    @property
    def content_channels(self) -> int:
        return self.content * self.scale ** 2

    @property
    def layout(self) -> NoiseLayout:
        """All per-cell inputs are 'local' channels. For stylisation the content's packed
        pixels follow the noise: painters draw them as noise (the noise part is then the same
        numbers as a texture model's, it comes first in the stream) and overwrite them with
        the content (runtime/stylize.py)."""
        return NoiseLayout(0, self.noise_channels + self.content_channels, 0)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TexNetConfig":
        return cls(**d)


def conv_block(cin: int, cout: int) -> list[nn.Module]:
    """The paper's block: 3x3, 3x3 and 1x1 convs, each with batch norm and LeakyReLU (no
    conv bias: batch norm's shift replaces it)."""
    layers = []
    for k, a in zip((3, 3, 1), (cin, cout, cout)):
        layers += [WrapConv2d(a, cout, k, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(SLOPE)]
    return layers


def run_layers(seq: nn.Sequential, x: torch.Tensor, valid: bool) -> torch.Tensor:
    """Run seq wrapping every conv (valid=False: x is a whole torus) or not (valid=True: x
    carries real context, each conv eats its share)."""
    for layer in seq:
        x = layer.forward_valid(x) if valid and isinstance(layer, WrapConv2d) else layer(x)
    return x


def centre_crop(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    dy, dx = (x.shape[-2] - h) // 2, (x.shape[-1] - w) // 2
    return x[..., dy:dy + h, dx:dx + w]


def context(seq: nn.Sequential) -> int:
    """Pixels per side a sequence's valid convs consume at its resolution."""
    return sum(m.wrap for m in seq if isinstance(m, WrapConv2d))


class TexNet(nn.Module):
    def __init__(self, cfg: TexNetConfig):
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.branches = nn.ModuleList(nn.Sequential(*conv_block(cfg.noise + cfg.content, w))
                                      for _ in range(cfg.levels))
        # join j: batch norm over [upsampled trunk, branch j] (the paper: "right before the
        # concatenation", it balances the gradients of the branches), then a block
        self.joins = nn.ModuleList(nn.Sequential(nn.BatchNorm2d((j + 1) * w), *conv_block((j + 1) * w, (j + 1) * w))
                                   for j in range(1, cfg.levels))
        self.to_image = nn.Conv2d(cfg.levels * w, cfg.channels, 1)

    def inputs(self, z: torch.Tensor) -> list[torch.Tensor]:
        """z (B, layout.channels, h, w) cells -> per level (B, noise [+ content], h*2**j, w*2**j)."""
        cfg, out, at = self.cfg, [], 0
        for j in range(cfg.levels):
            n = cfg.noise * 4 ** j
            out.append(F.pixel_shuffle(z[:, at:at + n], 2 ** j) if j else z[:, at:at + n])
            at += n
        if cfg.content:
            c = F.pixel_shuffle(z[:, at:at + cfg.content_channels], cfg.scale)
            pooled = [c]
            for _ in range(cfg.levels - 1):
                pooled.append(F.avg_pool2d(pooled[-1], 2))
            out = [torch.cat([n, c], 1) for n, c in zip(out, reversed(pooled))]
        return out

    def _paint(self, z: torch.Tensor, valid: bool) -> torch.Tensor:
        levels = self.inputs(z)
        x = run_layers(self.branches[0], levels[0], valid)
        for branch, join, noise in zip(self.branches[1:], self.joins, levels[1:]):
            x = F.interpolate(x, scale_factor=2, mode="nearest")
            b = run_layers(branch, noise, valid)
            # valid: both have lost a border; the trunk's is wider, cut the branch to it
            b = centre_crop(b, x.shape[-2], x.shape[-1])
            x = run_layers(join, torch.cat([x, b], 1), valid)
        return torch.tanh(self.to_image(x))

    def forward(self, z, coords=None, torus=None):
        """The whole torus z (B, C, h, w) -> (B, channels, h*scale, w*scale); every conv
        wraps. coords and torus are accepted for the painters' interface (no waves here)."""
        return self._paint(z, valid=False)

    def interior(self, z, coords=None, torus=None):
        """Paint a tile: z (B, C, h + 2m, w + 2m) is h x w cells plus m = self.margin cells of
        their real neighbours on each side (runtime/tiling.tile_noise); every conv runs
        'valid' on that context and the result is the (B, channels, h*scale, w*scale)
        interior, equal to those pixels of forward() on the whole torus."""
        x = self._paint(z, valid=True)
        c = self.margin * self.cfg.scale - self.context_px
        return x[..., c:x.shape[-2] - c, c:x.shape[-1] - c]

    @property
    def context_px(self) -> int:
        """Output pixels per side that the valid convs consume: each level's border, doubled
        by every upsampling after it, the widest path (trunk or branch) at each join."""
        lost = context(self.branches[0])
        for branch, join in zip(self.branches[1:], self.joins):
            lost = max(2 * lost, context(branch)) + context(join)
        return lost

    @property
    def margin(self) -> int:
        """Noise cells of context a tile needs on each side (4 for any depth: the border
        halves in cells at each finer level)."""
        return math.ceil(self.context_px / self.cfg.scale)
